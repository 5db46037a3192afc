"""Abuse control without identifiers: CSRF, and the rate limits of submissions, proposals and ballots.

The limiter never sees a plain address: its key is an HMAC of the address under a key that
changes every day, so stored counters (memory or Redis) cannot be turned back into addresses.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect

from . import keys, participants

csrf = CSRFProtect()


def hashed_address() -> str:
    """The client address as a keyed hash that rotates daily (never the address itself)."""
    day = dt.date.today().isoformat()
    secret = str(current_app.config["SECRET_KEY"]).encode()
    day_key = hmac.new(secret, f"pulse/ratelimit\0{day}".encode(), hashlib.sha256).digest()
    address = (request.remote_addr or "unknown").encode()
    return hmac.new(day_key, address, hashlib.sha256).hexdigest()[:32]


limiter = Limiter(key_func=hashed_address, headers_enabled=False, strategy="fixed-window")


def submit_limit() -> str:
    return current_app.config["PULSE_SUBMIT_LIMIT"]


# One budget for the form and the API, so switching channels does not double it.
submit = limiter.shared_limit(submit_limit, scope="submit", methods=["POST"])


# Per client address (hashed): proposals and ballots, shared by the page and the API.
PROPOSE_LIMIT = "10 per hour"
BALLOT_LIMIT = "60 per hour"
# Per results key, counted in the limiter's store only (never the database), under the key's
# "proposal" hash: one key cannot flood the moderation queue from many networks.
PROPOSE_KEY_LIMIT = "5 per day"
# The form field of the topics page that carries a results key.
KEY_FIELD = "results_key"


def _proposal_limit_key() -> str:
    key = participants.presented_key(KEY_FIELD)
    if keys.normalize(key) is None:
        return "address:" + hashed_address()
    return "key:" + participants.proposal_hash(key)


def _stored(response) -> bool:
    return response.status_code in (201, 303)


propose_limit = limiter.shared_limit(PROPOSE_LIMIT, scope="propose", methods=["POST"])
propose_key_limit = limiter.shared_limit(PROPOSE_KEY_LIMIT, scope="propose-key", methods=["POST"],
                                         key_func=_proposal_limit_key, deduct_when=_stored)
ballot_limit = limiter.shared_limit(BALLOT_LIMIT, scope="ballot", methods=["POST", "PUT"])


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "pulse")
    csrf.init_app(app)
    limiter.init_app(app)
