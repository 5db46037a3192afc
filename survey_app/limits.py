"""Abuse control without identifiers: CSRF, and rate limits keyed by a rotating hash.

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


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "pulse")
    csrf.init_app(app)
    limiter.init_app(app)
