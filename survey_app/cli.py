"""The `pulse` command line. Each command does what the admin page does, through the same code."""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click

from . import ConfigError, create_app, keys, migrate, snapshots, storage
from .questions import SurveyError
from .settings import SettingsError

# Synthetic responses a fresh `pulse serve --demo` database starts with.
DEMO_RESPONSES = 240


def _app(**overrides):
    try:
        return create_app(overrides or None)
    except (ConfigError, SurveyError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group(help="Pulse: the anonymous survey and benchmark of clinical aftercare.")
def main() -> None:
    pass


@main.command(help="Serve Pulse with gunicorn; migrates the schema first.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes. Default: 1 with in-memory rate limits (exact counts), "
                   "2 x cores + 1 once limits live in Redis.")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True, help="Threads per worker.")
@click.option("--demo", is_flag=True, help="Serve a separate demo database filled with synthetic responses.")
def serve(host: str, port: int, workers: int | None, threads: int, demo: bool) -> None:
    from .server import PulseServer, gunicorn_options

    overrides = {}
    if demo:
        os.environ.setdefault("PULSE_DEMO", "1")
        if not os.environ.get("SECRET_KEY"):
            # One key for every worker of this run; the demo database holds nothing real.
            os.environ["SECRET_KEY"] = secrets.token_hex(32)
    elif not os.environ.get("SECRET_KEY") and os.environ.get("PULSE_ENV") == "development":
        os.environ["SECRET_KEY"] = secrets.token_hex(32)  # shared by this run's workers
    app = _app(**overrides)
    url = app.config["DATABASE_URL"]
    migrate.upgrade(url)
    if app.config.get("PULSE_DEMO"):
        _fill_demo(app)
    memory = app.config["RATELIMIT_STORAGE_URI"].startswith("memory")
    if workers is None:
        workers = 1 if memory else 2 * (os.cpu_count() or 1) + 1
    if memory and workers > 1 and app.config["RATELIMIT_ENABLED"]:
        raise click.ClickException(
            "in-memory rate limits would count per worker process; use --workers 1 (with threads) "
            "or set PULSE_RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379")
    click.echo(f"Pulse serving {app.config['SURVEY'].title!r} on http://{host}:{port}/ "
               f"({workers} worker{'s' if workers > 1 else ''} x {threads} threads, "
               f"database {storage.describe(url)})", err=True)
    PulseServer(create_app, gunicorn_options(host, port, workers, threads)).run()


def _fill_demo(app) -> None:
    from . import demo

    with app.app_context():
        engine = storage.engine()
        survey = app.config["SURVEY"]
        with storage.writer(engine) as db:
            empty = storage.count_responses(db, survey.id, survey.version) == 0
        if empty:
            demo.fill(engine, survey, DEMO_RESPONSES, app.config["SECRET_KEY"])
        # Synthetic data has nothing to protect: a newcomer sees the whole dashboard at once.
        with storage.writer(engine) as db:
            storage.set_survey_state(db, survey.id, survey.version, released=True)
        snapshots.rebuild(engine, survey, snapshots.rules_from_config(app.config), full=True)


@main.command("demo-data", help="Add N synthetic responses; refuses a database holding real responses.")
@click.argument("n", type=click.IntRange(1, 10_000_000))
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable data.")
def demo_data(n: int, seed: int | None) -> None:
    from . import demo

    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    with app.app_context():
        try:
            demo.fill(storage.engine(), app.config["SURVEY"], n, app.config["SECRET_KEY"], seed=seed, progress=True)
        except demo.RealDataError as exc:
            raise click.ClickException(str(exc)) from None
        _rebuild(app, full=True)
    click.echo(f"Added {n} synthetic responses and rebuilt the snapshot.")


def _rebuild(app, full: bool) -> int | None:
    survey = app.config["SURVEY"]
    engine = storage.engine()
    with storage.writer(engine) as db:
        pending = storage.count_responses(db, survey.id, survey.version, pending_only=not full)
    with click.progressbar(length=max(pending, 1), label="Building the snapshot", file=sys.stderr) as bar:
        return snapshots.rebuild(engine, survey, snapshots.rules_from_config(app.config), full=full,
                                 progress=bar.update)


@main.command(help="Rebuild the benchmark snapshot now.")
@click.option("--full", is_flag=True, help="Recount every response instead of adding the new ones.")
def snapshot(full: bool) -> None:
    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    with app.app_context():
        n = _rebuild(app, full)
    if n is None:
        raise click.ClickException("another rebuild is running; try again in a moment")
    click.echo(f"Snapshot rebuilt: {n} responses.")


@main.command("report", help="Write the static report from the latest snapshot: report.html (opens offline, "
                             "plotly.min.js beside it), aggregates.csv and benchmark.json.")
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into (created if missing; earlier files are replaced).")
def report_command(out: Path) -> None:
    from . import report

    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    survey = app.config["SURVEY"]
    with app.app_context():
        published = snapshots.current(survey).published
        with click.progressbar(length=report.steps(published), label="Writing the report", file=sys.stderr) as bar:
            paths = report.write_report(survey, published, out, progress=bar.update)
    if not published.get("published"):
        click.echo(f"note: nothing is published yet ({published.get('needed')} more responses needed); "
                   "the report says so and holds no figures.", err=True)
    click.echo("\n".join(str(p) for p in paths))


@main.command("export", help="Write the published aggregates as CSV (one row per cell), to FILE or stdout.")
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None,
              help="File to write; without it (or with -) the CSV goes to stdout.")
def export_command(out: Path | None) -> None:
    from . import report

    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    survey = app.config["SURVEY"]
    with app.app_context():
        text = report.csv_text(survey, snapshots.current(survey).published)
    if out is None or str(out) == "-":
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8", newline="")
        click.echo(f"Wrote {out}", err=True)


@main.group("survey", help="Open or close the survey for responses.")
def survey_group() -> None:
    pass


def _set_state(**changes: bool) -> None:
    from . import admin_actions

    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    with app.app_context():
        message = admin_actions.set_survey_state(**changes)
    click.echo(message)


@survey_group.command("open", help="Accept responses.")
def survey_open() -> None:
    _set_state(is_open=True)


@survey_group.command("close", help="Stop accepting responses.")
def survey_close() -> None:
    _set_state(is_open=False)


@main.command(help="End early access: publish the results to everyone.")
def release() -> None:
    _set_state(released=True)


@main.command(help="Print N single-use invite codes (for a survey in invite mode).")
@click.argument("n", type=click.IntRange(1, 100_000))
def invites(n: int) -> None:
    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    survey = app.config["SURVEY"]
    codes = [keys.new_invite_code() for _ in range(n)]
    with app.app_context():
        with storage.writer() as db:
            storage.add_invites(db, survey.id, [keys.keyed_hash(app.config["SECRET_KEY"], "invite", c) for c in codes])
    if not survey.invite_only:
        click.echo("note: this survey is not in invite mode (invite_only: false); the codes are not needed yet.", err=True)
    click.echo("\n".join(codes))


@main.command("migrate", help="Bring the database schema up to date (serve does this too).")
def migrate_command() -> None:
    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    click.echo(f"Schema up to date: {storage.describe(app.config['DATABASE_URL'])}")


# ------------------------------------------------------------------ organisers and community


def _in_app(call, *args):
    """Run one community action inside the app; its message, or a clean error."""
    from .community import CommunityError

    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    with app.app_context():
        try:
            return call(*args)
        except CommunityError as exc:
            raise click.ClickException(exc.message) from None


def _read_password() -> str:
    stdin = sys.stdin
    if stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    # Not a terminal: the first line is the password, an optional second line confirms it.
    lines = stdin.read().splitlines()
    if not lines or not lines[0]:
        raise click.ClickException("no password on stdin; nothing was changed")
    if len(lines) > 1 and lines[1] != lines[0]:
        raise click.ClickException("the two passwords differ; nothing was changed")
    return lines[0]


@main.command("create-admin", help="Create an organiser account. The password is asked twice "
                                   "(or read from stdin: the password, optionally again on a second line).")
@click.argument("username")
def create_admin(username: str) -> None:
    from .admin_auth import AdminError, create_admin as create

    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    password = _read_password()
    with app.app_context():
        try:
            name = create(username, password)
        except AdminError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Admin {name!r} created. Log in at /admin.")


@main.command("admin-totp", help="Turn on two-step login for an organiser: shows a new secret for an "
                                  "authenticator app (as a QR code and as text). --off turns it off.")
@click.argument("username")
@click.option("--off", is_flag=True, help="Go back to the password alone.")
def admin_totp(username: str, off: bool) -> None:
    import segno

    from .admin_auth import AdminError, set_totp

    app = _app()
    migrate.upgrade(app.config["DATABASE_URL"])
    with app.app_context():
        try:
            uri = set_totp(username, enable=not off)
        except AdminError as exc:
            raise click.ClickException(str(exc)) from None
    if uri is None:
        click.echo(f"Two-step login is off for {username!r}: the password alone logs in.")
        return
    segno.make(uri, error="m").terminal(compact=True)
    click.echo(f"Scan this in an authenticator app, or enter the secret by hand:\n{uri}\n"
               "From now on the login asks for the app's 6-digit code. Any earlier secret no longer works.")


@main.group("topics", help="Moderate proposed topics: list, approve, reject, merge.")
def topics_group() -> None:
    pass


@topics_group.command("list", help="Every topic by state, with its id.")
def topics_list() -> None:
    from . import community

    queue = _in_app(community.moderation_queue)
    for status, topics in queue.items():
        click.echo(f"{status} ({len(topics)})")
        for t in topics:
            into = f"  -> {t.merged_into}" if t.merged_into else ""
            click.echo(f"  {t.id}  {t.week}  {t.title}{into}")


@topics_group.command("approve", help="Approve topic ID: it goes on the next round's ballot.")
@click.argument("topic_id", metavar="ID")
def topics_approve(topic_id: str) -> None:
    from . import community
    click.echo(_in_app(community.moderate, topic_id, "approve"))


@topics_group.command("reject", help="Reject topic ID (it also leaves an open round's ballot).")
@click.argument("topic_id", metavar="ID")
def topics_reject(topic_id: str) -> None:
    from . import community
    click.echo(_in_app(community.moderate, topic_id, "reject"))


@topics_group.command("merge", help="Merge topic ID into INTO_ID: ID leaves the ballot, its approvals move to INTO_ID.")
@click.argument("topic_id", metavar="ID")
@click.argument("into_id", metavar="INTO_ID")
def topics_merge(topic_id: str, into_id: str) -> None:
    from . import community
    click.echo(_in_app(community.moderate, topic_id, "merge", into_id))


@main.group("round", help="Open or close a voting round over the approved topics.")
def round_group() -> None:
    pass


@round_group.command("open", help="Open a round over every approved topic.")
def round_open() -> None:
    from . import community
    click.echo(_in_app(community.open_round))


@round_group.command("close", help="Close the open round and print its tally.")
def round_close() -> None:
    from . import community
    click.echo(_in_app(community.close_round))


def run() -> None:
    """Entry point that keeps tracebacks for real bugs only."""
    main(prog_name=Path(sys.argv[0]).name or "pulse")
