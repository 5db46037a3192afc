"""Schema migrations: Alembic's upgrade, downgrade and "is it current?" from code, for the CLI and tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for the packaged migrations and this database URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema up to a revision (default: the newest)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Take the schema down to a revision (default: empty)."""
    command.downgrade(alembic_config(url), revision)


def is_current(engine: Engine) -> bool:
    """Whether the database's schema is at the newest revision (False for an empty database)."""
    heads = set(
        ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False))).get_heads()
    )
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) == heads


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head() -> str:
    """The newest revision this Pulse knows."""
    return _scripts().get_current_head()


def known(revision: str) -> bool:
    """Whether this Pulse's migrations include a revision (a newer Pulse's are unknown to it)."""
    return any(script.revision == revision for script in _scripts().walk_revisions())


def current_revision(bind: Engine | Connection) -> str | None:
    """The database's schema revision; None for a database without Pulse's schema."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return MigrationContext.configure(bind).get_current_revision()
