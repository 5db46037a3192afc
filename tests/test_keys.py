"""Results keys: 128 random bits, normalised input, separate hash domains."""

import pytest

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
