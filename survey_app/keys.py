"""Results keys and invite codes: random values shown once, stored only as keyed hashes.

Each use has its own HMAC domain, so the hash kept with a response and the hash kept with a
ballot are unrelated values: the tables cannot be joined without the key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

KEY_BYTES = 16  # 128 bits: too many to guess (tests/test_keys.py)
INVITE_BYTES = 10
DOMAINS = ("response", "ballot", "proposal", "invite")
# A results key exactly as _encode writes it: 26 base32 characters in groups of four, the last
# carrying 3 bits of the key and 2 zero bits (so one of 8 characters). Python's base32 is slow, and
# the session hands the key back in this form on every request.
CANONICAL_KEY = re.compile(r"[A-Z2-7]{4}(?:-[A-Z2-7]{4}){5}-[A-Z2-7][AEIMQUY4]")


def _encode(raw: bytes) -> str:
    text = base64.b32encode(raw).decode().rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def new_results_key() -> str:
    """A fresh 128-bit results key, grouped for reading aloud (e.g. ABCD-EFGH-…)."""
    return _encode(secrets.token_bytes(KEY_BYTES))


def new_invite_code() -> str:
    """A fresh single-use invite code."""
    return _encode(secrets.token_bytes(INVITE_BYTES))


def normalize(value: object, size: int = KEY_BYTES) -> str | None:
    """The canonical form of a typed key or code, or None if it is malformed."""
    if not isinstance(value, str) or len(value) > 80:
        return None
    if size == KEY_BYTES and CANONICAL_KEY.fullmatch(value):
        return value
    text = "".join(value.split()).replace("-", "").upper()
    length = len(base64.b32encode(bytes(size)).decode().rstrip("="))
    if len(text) != length:
        return None
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    return _encode(raw) if len(raw) == size else None


def keyed_hash(secret: str | bytes, domain: str, value: str) -> str:
    """HMAC-SHA256 of a normalised key in one domain, as hex."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown hash domain {domain!r}")
    secret = secret.encode() if isinstance(secret, str) else secret
    message = f"pulse/{domain}\0{value}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
