"""The session cookie's signer is built once per app and key, and still signs and checks as Flask's."""

from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface

from survey_app import session_cookie

from .helpers import form_tokens


def test_the_signer_is_built_once_and_signs_as_flasks_own(app, client, monkeypatch):
    built = []
    original = SecureCookieSessionInterface.get_signing_serializer

    def counting(self, app_):
        built.append(app_)
        return original(self, app_)

    monkeypatch.setattr(SecureCookieSessionInterface, "get_signing_serializer", counting)
    assert isinstance(app.session_interface, session_cookie.SessionCookie)
    for _ in range(3):
        assert client.get("/survey").status_code == 200  # a page that puts a CSRF token in the session
    assert len(built) == 1
    # The cookie it wrote is one Flask's own interface reads with the same key.
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert original(SecureCookieSessionInterface(), app).loads(cookie.value)["csrf_token"]
    assert form_tokens(client.get("/survey").get_data(as_text=True))["csrf_token"]


def test_a_new_secret_key_gets_a_new_signer(app):
    cookies = session_cookie.SessionCookie()
    first = cookies.get_signing_serializer(app)
    assert cookies.get_signing_serializer(app) is first
    app.secret_key = "another secret key, as long as a real one should be"
    second = cookies.get_signing_serializer(app)
    assert second is not first
    assert second.loads(second.dumps({"a": 1})) == {"a": 1}
