"""Alembic environment: the same engine rules (SQLite pragmas, IMMEDIATE writes) as the app."""

from alembic import context

from survey_app.models import Base
from survey_app.storage import make_engine

config = context.config


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    # Batch mode lets SQLite alter tables by copying them: a new table, the rows copied, the old
    # table dropped, the copy renamed. With foreign keys on, SQLite's DROP TABLE first deletes
    # every row, and ON DELETE CASCADE then empties the tables that refer to it (0006 rebuilt
    # `rounds`, which took every ballot with it). So, as Alembic's batch documentation advises,
    # foreign keys are off while migrating (the pragma does nothing inside a transaction: it is
    # set on the driver's connection before the migrations' transaction begins), and checked
    # before the commit.
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


run_migrations_online()
