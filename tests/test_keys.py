"""Results keys: 128 random bits, normalised input, separate hash domains."""

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from survey_app import keys


def test_new_key_is_128_bits_and_normalises_to_itself():
    key = keys.new_results_key()
    assert keys.normalize(key) == key
    assert len(key.replace("-", "")) == 26  # 128 bits in base32
    assert keys.new_results_key() != key


@pytest.mark.parametrize("typed", ["{k}", "{k_lower}", " {k_nodash} ", "{k_spaced}"])
def test_typing_variants_are_accepted(typed):
    key = keys.new_results_key()
    value = typed.format(k=key, k_lower=key.lower(), k_nodash=key.replace("-", ""), k_spaced=key.replace("-", " "))
    assert keys.normalize(value) == key


@pytest.mark.parametrize("bad", [None, 5, "", "abc", "A" * 27, "1" * 26, "x" * 200, ["k"]])
def test_malformed_keys_are_none(bad):
    assert keys.normalize(bad) is None


def test_domains_give_unrelated_hashes():
    key = keys.new_results_key()
    assert keys.keyed_hash("s", "response", key) != keys.keyed_hash("s", "ballot", key)
    assert keys.keyed_hash("s", "response", key) != keys.keyed_hash("t", "response", key)
    with pytest.raises(ValueError):
        keys.keyed_hash("s", "other", key)


def _normalized_the_long_way(value: str) -> str | None:
    """normalize without its shortcut for a key already in its written form."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "CANONICAL_KEY", re.compile("(?!)"))  # matches nothing
        return keys.normalize(value)


@given(st.binary(min_size=16, max_size=16), st.integers(0, 10_000), st.sampled_from(string.ascii_uppercase + "234567-"))
def test_the_shortcut_for_a_written_key_agrees_with_decoding_it(raw, place, character):
    """A key as written is itself; the same with any one character changed normalises as decoding
    it would (a last character with bits a key cannot carry is not taken as written)."""
    key = keys._encode(raw)
    assert keys.normalize(key) == key == _normalized_the_long_way(key)
    place %= len(key)
    changed = key[:place] + character + key[place + 1 :]
    assert keys.normalize(changed) == _normalized_the_long_way(changed)
