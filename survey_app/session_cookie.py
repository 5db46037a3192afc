"""The signed session cookie exactly as Flask makes it, with its signer built once per app.

Flask builds an itsdangerous serializer (and its key derivation) on every request that opens or
saves a session, which is every request; the serializer holds nothing per request, so one per
secret key serves them all.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer


class SessionCookie(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._signers: dict[tuple, URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        # Keyed by the keys themselves: a test (or a reload) that changes them gets a new signer.
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if keys not in self._signers:
            self._signers[keys] = super().get_signing_serializer(app)
        return self._signers[keys]

    def expires_at(self, app: Flask, request: Request) -> float | None:
        """When (time.time()) the request's session cookie stops being accepted, as open_session
        checks its signed time against PERMANENT_SESSION_LIFETIME; None without a valid cookie."""
        value = request.cookies.get(self.get_cookie_name(app))
        signer = self.get_signing_serializer(app)
        if not value or signer is None:
            return None
        lifetime = app.permanent_session_lifetime.total_seconds()
        try:
            _, signed = signer.loads(value, max_age=lifetime, return_timestamp=True)
        except BadSignature:
            return None
        return signed.timestamp() + lifetime
