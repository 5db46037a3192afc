"""Pulse: the anonymous survey and benchmark of ketamine-therapy aftercare.

create_app() is the only place that knows every part: settings, the survey, the database,
security headers, rate limits and the blueprints.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

# Shortest SECRET_KEY accepted in production: 32 bytes of randomness as hex or similar.
MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """The app cannot start with this configuration; the message says how to fix it."""


def create_app(test_config: Mapping[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    """Create and configure a Pulse application (instance_path: Flask's instance folder, for tests)."""
    # Imported here, not with the package: `pulse --help` (survey_app.cli) then needs none of them.
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from . import (
        admin_auth,
        assets,
        compiled_templates,
        compression,
        errors,
        fast_reads,
        headers,
        limits,
        question_types,
        schedules,
        session_cookie,
        snapshots,
        state,
        storage,
        wording,
    )
    from .pipeline.perturbation import PTableError
    from .questions import read_survey_file
    from .settings import read_settings
    from .snapshot_watch import SnapshotWatch
    from .views import (
        admin,
        admin_editor,
        admin_participation,
        admin_schedule,
        api,
        feed,
        guide,
        pages,
        results,
        survey,
        topics,
        topics_api,
    )

    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.jinja_options = {**app.jinja_options, "bytecode_cache": compiled_templates.KEPT}
    app.config.update(read_settings())
    if test_config:
        app.config.update(test_config)
    _check_secret(app)
    if app.config["PULSE_DEMO"]:
        app.config["DATABASE_URL"] = storage.default_url(app.instance_path, "pulse-demo.sqlite3")
    elif not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = storage.default_url(app.instance_path)
    if app.config["PULSE_ENV"] != "development" and app.debug:
        raise ConfigError("debug mode is for PULSE_ENV=development only")

    https = bool(app.config["PULSE_HTTPS"])
    app.config.update(
        SESSION_COOKIE_NAME="__Host-session" if https else "pulse_session",
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
        WTF_CSRF_SSL_STRICT=https,
        MAX_FORM_PARTS=100,
        MAX_FORM_MEMORY_SIZE=64 * 1024,
    )
    # The survey file PULSE_QUESTIONS names: validated now (a broken file stops the start with
    # its line), stored and made current if none is when the program is first needed
    # (program.start). Pages serve the program's current survey, program.current_survey().
    app.config["SURVEY"], app.config["SURVEY_TEXT"] = read_survey_file(app.config.get("PULSE_QUESTIONS"))

    hops = int(app.config.get("PULSE_PROXY_HOPS") or 0)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
        # Trusting X-Forwarded-For is right only behind a proxy: say so, and notice when none is there.
        limits.warn_trusted_proxy(hops)
        app.before_request(limits.note_unforwarded)

    try:
        disclosure_rules = snapshots.disclosure_rules_from_config(app.config)
    except PTableError as exc:
        raise ConfigError(f"PULSE_PTABLE: {exc}") from None
    url = app.config["DATABASE_URL"]
    engine = storage.make_engine(url)
    cache = state.Cache()
    # PostgreSQL: each worker hears of other workers' changes instead of asking per request.
    watch = SnapshotWatch(url, cache.heard) if engine.dialect.name == "postgresql" else None
    state.install(
        app,
        state.PulseState(
            engine=engine,
            probe=storage.make_probe(url, engine),
            watch=watch,
            disclosure_rules=disclosure_rules,
            cache=cache,
        ),
    )
    storage.init_app(app)
    app.session_interface = session_cookie.SessionCookie()
    headers.init_app(app)
    limits.init_app(app)
    errors.init_app(app)
    wording.init_app(app)
    assets.init_app(app)
    compression.init_app(app)
    admin_auth.init_app(app)
    schedules.init_app(app)

    app.register_blueprint(pages.bp)
    app.register_blueprint(survey.bp)
    app.register_blueprint(results.bp)
    app.register_blueprint(guide.bp)
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    limits.csrf.exempt(api.bp)  # JSON only: a cross-site form cannot send application/json
    app.register_blueprint(topics.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin_schedule.bp)
    app.register_blueprint(admin_participation.bp)
    app.register_blueprint(feed.bp)
    app.register_blueprint(admin_editor.bp)
    app.register_blueprint(topics_api.bp, url_prefix="/api/v1")
    limits.csrf.exempt(topics_api.bp)  # JSON only, like api.bp
    app.context_processor(lambda: {"demo": _is_demo(app), "site_title": lambda: _site_title(app)})
    # A published question names its type; the templates word it from the type's class.
    app.add_template_global(question_types.of, "question_type")
    # The most repeated reads, answered again without Flask while nothing changed (outermost).
    fast_reads.install(app)
    return app


def _site_title(app: Flask) -> str:
    """The current survey's title for page titles; the start-up file's when the database cannot say
    (an error page must still render when the database is down or not migrated yet)."""
    from sqlalchemy.exc import SQLAlchemyError

    from . import program, storage

    try:
        return program.current_survey().title
    except SQLAlchemyError:
        storage.reader().rollback()
        return app.config["SURVEY"].title


# Seconds a worker trusts its answer to "is this a demo database?" before asking again.
DEMO_CHECK_SECONDS = 30


def _is_demo(app: Flask) -> bool:
    """Whether pages carry the demo banner: --demo, or a database marked as demo data."""
    from sqlalchemy.exc import SQLAlchemyError

    from . import program_queries, state, storage

    if app.config["PULSE_DEMO"]:
        return True
    now = time.monotonic()
    pulse = state.of(app)
    checked_at, value = pulse.cache.demo
    if checked_at is not None and now - checked_at < DEMO_CHECK_SECONDS:
        return value
    db = storage.reader()
    try:
        value = program_queries.is_demo(db)
    except SQLAlchemyError:
        # An error page must still render when the database is down or not migrated yet.
        db.rollback()
        return False
    pulse.cache.demo = (now, value)
    return value


# The generated development SECRET_KEY, in the instance folder beside the default database.
SECRET_FILE = "secret_key"


def kept_secret(path: Path) -> str:
    """The SECRET_KEY kept in this file, made (readable by its owner only) if there is none yet.

    Several workers may start at once: each writes a candidate under its own name and links it
    into place; a link never replaces a file, so the first one wins and everyone reads that.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{path} holds no usable SECRET_KEY (at least {MIN_SECRET_LENGTH} characters); "
            "delete it to have a new one made (every results key made under the old one stops working)"
        )
    return secret


def secret_note(app: Flask) -> str | None:
    """The start-up line saying where a generated SECRET_KEY is kept, or None when it was set."""
    path = app.config.get("PULSE_SECRET_FILE")
    if not path:
        return None
    return (
        f"SECRET_KEY: none set, so the one generated for development is kept in {path} (the same for every "
        "worker and after a restart). Set SECRET_KEY in production."
    )


def _check_secret(app: Flask) -> None:
    secret = app.config.get("SECRET_KEY")
    if secret:
        if len(str(secret)) < MIN_SECRET_LENGTH and app.config["PULSE_ENV"] != "development":
            raise ConfigError(
                f"SECRET_KEY is too short ({len(str(secret))} characters); use at least "
                f"{MIN_SECRET_LENGTH}, e.g. SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return
    if app.config["PULSE_ENV"] == "development" or app.config["PULSE_DEMO"]:
        # Kept in the instance folder: the same for every worker and every `pulse` command, and
        # results keys survive a restart (a key per start would make every key die with it).
        path = Path(app.instance_path) / SECRET_FILE
        app.config["SECRET_KEY"] = kept_secret(path)
        app.config["PULSE_SECRET_FILE"] = str(path)
        return
    raise ConfigError(
        "SECRET_KEY is not set. Set it to a long random value shared by every worker, e.g. "
        "export SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))'), "
        "or set PULSE_ENV=development for a local trial."
    )
