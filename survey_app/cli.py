"""The `pulse` command line. Each command does what the admin page does, through the same code.

The group builds the app once, when a command first needs it, and holds its app context
open for the rest of the command (`ctx.with_resource`). Only `serve` and `migrate` change the
schema (on SQLite after a backup beside the file); `restore` fills an empty database and brings
it to the current schema itself; every other command refuses a database whose schema is not
current, and says so.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import ConfigError, create_app, secret_note
from .domain_errors import DomainError
from .settings import SettingsError

if TYPE_CHECKING:
    from flask import Flask

    from .pipeline.figures import Published


class _Later:
    """A module of the app imported when a command first uses it: `pulse --help` and a mistyped
    command need click alone, not Flask, SQLAlchemy and pandas (seconds on a small machine)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(_app_modules()[self._name], attr)


@functools.cache
def _app_modules() -> dict[str, Any]:
    """The app's modules the commands use, imported together on first use (written as imports,
    so that tests/test_layers.py sees what this module depends on)."""
    from . import (
        admin_actions,
        admin_auth,
        backup,
        demo,
        errors,
        exports,
        migrate,
        program,
        questions,
        report,
        response_queries,
        restore,
        schedules,
        server,
        snapshots,
        state,
        storage,
        wording,
    )
    from .community import voting as community

    return {
        "admin_actions": admin_actions,
        "admin_auth": admin_auth,
        "backup": backup,
        "demo": demo,
        "errors": errors,
        "exports": exports,
        "migrate": migrate,
        "program": program,
        "questions": questions,
        "report": report,
        "response_queries": response_queries,
        "restore": restore,
        "schedules": schedules,
        "server": server,
        "snapshots": snapshots,
        "state": state,
        "storage": storage,
        "wording": wording,
        "community": community,
    }


admin_actions = _Later("admin_actions")
admin_auth = _Later("admin_auth")
backup = _Later("backup")
community = _Later("community")
demo = _Later("demo")
errors = _Later("errors")
exports = _Later("exports")
migrate = _Later("migrate")
program = _Later("program")
questions = _Later("questions")
report = _Later("report")
response_queries = _Later("response_queries")
restore = _Later("restore")
schedules = _Later("schedules")
server = _Later("server")
snapshots = _Later("snapshots")
state = _Later("state")
storage = _Later("storage")
wording = _Later("wording")

# Synthetic responses each survey of a fresh `pulse serve --demo` database starts with.
DEMO_RESPONSES = 240
PROG_NAME = "pulse"


def _app(*, migrating: bool = False, any_schema: bool = False) -> Flask:
    """The command's app, built once and with its app context pushed until the command ends.

    `migrating` commands bring the schema up to date (on SQLite after a backup beside the file,
    when there are rows to lose); `any_schema` leaves the schema to the command (restore); the
    others check it and refuse an old or missing schema rather than change it.
    """
    root = click.get_current_context().find_root()
    if root.obj is None:
        try:
            app = create_app()
        except (ConfigError, questions.SurveyError, SettingsError) as exc:
            raise click.ClickException(str(exc)) from None
        url = app.config["DATABASE_URL"]
        if migrating:
            _upgrade(url)
        elif not any_schema and not migrate.is_current(state.of(app).engine):
            raise click.ClickException(
                f"the database schema at {storage.describe(url)} is missing or older than this Pulse: "
                f"run `{PROG_NAME} migrate` (or `{PROG_NAME} serve`, which migrates) first; nothing was changed"
            )
        root.call_on_close(state.of(app).close)
        root.with_resource(app.app_context())
        root.obj = app
        if not migrating and not any_schema:
            _refused(program.ensure_started)  # the PULSE_QUESTIONS survey stored, and current if none is
    return root.obj


def _upgrade(url: str) -> None:
    with _progress("Backing up before the schema change") as progress:
        written = _refused(backup.upgrade_with_backup, url, progress)
    if written is not None:
        click.echo(
            f"Backed up the database to {written} before changing its schema "
            f"(the last {backup.KEEP_BEFORE_MIGRATION} such backups are kept).",
            err=True,
        )


def _refused(call, *args):
    """Run one action (or a backup or restore); its result, or its refusal as a clean command-line error."""
    try:
        return call(*args)
    except DomainError as exc:
        raise click.ClickException(wording.message(exc)) from None
    except errors.PulseError as exc:
        raise click.ClickException(exc.message) from None
    except (backup.BackupError, questions.SurveyError) as exc:
        raise click.ClickException(str(exc)) from None


class _OneLineUsage(click.UsageError):
    """A usage error said in one line, naming where --help says more: click's own block (usage,
    hint, a blank line, the error) is four lines, and an organiser's mistake is one."""

    def show(self, file: Any = None) -> None:
        hint = f" ({self.ctx.command_path} --help)" if self.ctx is not None else ""
        click.echo(f"Error: {' '.join(self.format_message().splitlines())}{hint}", file=file, err=True)


# click 8.2+ raises this for a group given no command (`pulse survey`): its help, shown as --help shows it.
_HELP_FOR_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


@contextmanager
def _one_line_usage():
    try:
        yield
    except (_OneLineUsage, _HELP_FOR_NO_ARGS):
        raise
    except click.UsageError as exc:  # BadParameter, MissingParameter, NoSuchOption, ours
        raise _OneLineUsage(exc.format_message(), exc.ctx) from None


class _Pulse(click.Group):
    """The `pulse` group: a usage error of any command, parsed in make_context or while its
    subcommand is found, parsed and run in invoke, is said in one line."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _one_line_usage():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage():
            return super().invoke(ctx)


class _Path(click.Path):
    """click.Path that refuses an empty name: Path("") is Path("."), and `--out ''` (an unset
    shell variable, say) would write into whatever folder the command runs in."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("empty; name one, or '.' for the current folder", param, ctx)
        return super().convert(value, param, ctx)


class _Count(click.IntRange):
    """A count: its refusal says "whole number" where click says "integer range"."""

    name = "whole number"


@click.group(PROG_NAME, cls=_Pulse, help="Pulse: the anonymous survey and benchmark of clinical aftercare.")
@click.version_option(package_name="pulse-survey", prog_name=PROG_NAME, message="%(prog)s %(version)s")
def main() -> None:
    pass


@main.command(help="Serve Pulse with gunicorn; migrates the schema first.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes. Default: 1 with in-memory rate limits (exact counts), "
    "2 x cores + 1 once limits live in Redis.",
)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True, help="Threads per worker.")
@click.option("--demo", is_flag=True, help="Serve a separate demo database filled with synthetic responses.")
def serve(host: str, port: int, workers: int | None, threads: int, demo: bool) -> None:
    # Set in the environment, not on this app: every gunicorn worker builds its own app from it.
    # Without SECRET_KEY, development and --demo read the one kept in the instance folder.
    if demo:
        os.environ.setdefault("PULSE_DEMO", "1")
    app = _app(migrating=True)
    _refused(program.ensure_started)
    note = secret_note(app)
    if note:
        click.echo(note, err=True)
    if app.config.get("PULSE_DEMO"):
        _fill_demo(app)
    memory = app.config["RATELIMIT_STORAGE_URI"].startswith("memory")
    if workers is None:
        workers = 1 if memory else 2 * (os.cpu_count() or 1) + 1
    if memory and workers > 1 and app.config["RATELIMIT_ENABLED"]:
        raise click.ClickException(
            "in-memory rate limits would count per worker process; use --workers 1 (with threads) "
            "or set PULSE_RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379"
        )
    _port_free_or_refused(host, port)
    click.echo(
        f"Pulse serving {program.current_survey().title!r} on http://{host}:{port}/ "
        f"({workers} worker{'s' if workers > 1 else ''} x {threads} threads, "
        f"database {storage.describe(app.config['DATABASE_URL'])})",
        err=True,
    )
    # This process's connections are not the workers': close them before gunicorn forks.
    state.of(app).close()
    server.PulseServer(create_app, server.gunicorn_options(host, port, workers, threads)).run()


def _port_free_or_refused(host: str, port: int) -> None:
    """Say so in one line, before gunicorn starts, when the address is taken or cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise click.ClickException(f"cannot serve on {host}: no such host; choose another with --host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(f"port {port} on {host} is in use: choose another with --port") from None
            raise click.ClickException(f"cannot serve on {host}:{port}: {(exc.strerror or str(exc)).lower()}") from None


def _fill_demo(app: Flask) -> None:
    """A fresh demo database gets the whole program, synthetic and released (demo.fill_program);
    one that already holds responses is served as it is."""
    _refused(demo.fill_program, storage.engine(), app.config["SECRET_KEY"], DEMO_RESPONSES)


@main.command("demo-data", help="Add N synthetic responses; refuses a database holding real responses.")
@click.argument("n", type=_Count(1, 10_000_000))
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable data.")
def demo_data(n: int, seed: int | None) -> None:
    app = _app()
    survey = program.current_survey()
    _refused(lambda: demo.fill(storage.engine(), survey, n, app.config["SECRET_KEY"], seed=seed, progress=True))
    _rebuild(survey, full=True, checked=False)  # synthetic data: nothing to protect
    click.echo(f"Added {n} synthetic responses and rebuilt the snapshot.")


def _rebuild(survey, full: bool, checked: bool = True) -> int | None:
    """A snapshot now, with a progress bar; `checked` rebuilds need PULSE_SNAPSHOT_MIN_NEW new responses."""
    engine = storage.engine()
    with storage.writer(engine) as db:
        pending = response_queries.count_responses(db, survey.id, survey.version, pending_only=not full)
    with click.progressbar(length=max(pending, 1), label="Building the snapshot", file=sys.stderr) as bar:
        if checked:
            return _refused(admin_actions.rebuild_snapshot, survey, full, bar.update)
        return snapshots.rebuild(engine, survey, snapshots.disclosure_rules(), full=full, progress=bar.update)


def survey_option(command):
    """--survey ID[@VERSION]: which survey a command acts on (default: the current one)."""
    return click.option(
        "--survey",
        "survey_ref",
        default=None,
        metavar="ID[@VERSION]",
        help="The survey to act on (no version: its highest). Default: the current survey.",
    )(command)


def _chosen(ref: str | None):
    _app()
    return _refused(admin_actions.chosen, ref)


@main.command(help="Rebuild the benchmark snapshot now.")
@click.option("--full", is_flag=True, help="Recount every response instead of adding the new ones.")
@survey_option
def snapshot(full: bool, survey_ref: str | None) -> None:
    n = _rebuild(_chosen(survey_ref), full)
    if n is None:
        raise click.ClickException("another rebuild is running; try again in a moment")
    click.echo(f"Snapshot rebuilt: {n} responses.")


@main.command(
    "report",
    help="Write the static report from the latest snapshot: report.html (opens offline, "
    "plotly.min.js beside it), aggregates.csv and benchmark.json.",
)
@click.option(
    "--out",
    default="reports",
    show_default=True,
    type=_Path(path_type=Path),
    help="Folder to write into (created if missing; earlier files are replaced).",
)
@survey_option
def report_command(out: Path, survey_ref: str | None) -> None:
    survey = _chosen(survey_ref)
    published = _published_or_refused(survey)
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"{out} is a file, not a folder: name a folder with --out; nothing was written")
    # Made before the bar is drawn: a folder that cannot be made is then the refusal's one line,
    # not a second line under the bar's label.
    _writing(out, lambda: out.mkdir(parents=True, exist_ok=True))
    with click.progressbar(length=report.steps(published), label="Writing the report", file=sys.stderr) as bar:
        paths = _writing(out, lambda: report.write_report(survey, published, out, progress=bar.update))
    click.echo("\n".join(str(p) for p in paths))


def _published_or_refused(survey) -> Published:
    """The survey's published figures; a one-line refusal when nothing is published yet."""
    published = snapshots.served(survey).published
    if not published.published:
        threshold = published.rules.release_threshold
        raise click.ClickException(
            f"nothing is published yet for {program.ref(survey)}: figures appear once "
            f"{threshold} clinics have answered; nothing was written"
        )
    return published


def _writing(out: Path, write):
    """Run `write`; a one-line error naming `out` when the file system refuses it."""
    try:
        return write()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise click.ClickException(f"cannot write to {out}: {reason}; choose another place with --out") from None


@main.command("export", help="Write the published aggregates as CSV (one row per cell), to FILE or stdout.")
@click.option(
    "--out",
    type=_Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="File to write; without it (or with -) the CSV goes to stdout.",
)
@survey_option
def export_command(out: Path | None, survey_ref: str | None) -> None:
    survey = _chosen(survey_ref)
    text = exports.aggregates_csv(survey, _published_or_refused(survey))
    if out is None or str(out) == "-":
        click.echo(text, nl=False)
    else:
        _writing(out, lambda: out.write_text(text, encoding="utf-8", newline=""))
        click.echo(f"Wrote {out}", err=True)


@main.group(
    "survey", help="The survey program: add surveys, open one (it becomes current), close it, schedule both, list them."
)
def survey_group() -> None:
    pass


@survey_group.command(
    "add",
    help="Validate a survey file and store it under its id and version "
    "(a stored version never changes: a changed survey needs a new version).",
)
@click.argument("file", type=_Path(dir_okay=False, path_type=Path))
@click.option(
    "--topic",
    "topic_id",
    default=None,
    metavar="TOPIC_ID",
    help="The topic this survey answers (`pulse topics list` shows ids).",
)
def survey_add(file: Path, topic_id: str | None) -> None:
    _app()
    _survey, stored = _refused(program.add, file, topic_id)
    click.echo(wording.survey_stored(stored))


@survey_group.command(
    "open",
    help="Make survey ID[@VERSION] current and open (no version: its highest; "
    "no survey: the current one again); the survey open before it is closed.",
)
@click.argument("ref", metavar="[ID[@VERSION]]", required=False)
def survey_open(ref: str | None) -> None:
    _app()
    click.echo(_refused(program.open_survey, ref or program.ref(program.current_survey())))


@survey_group.command("close", help="Close the current survey (it stays current) and build its final snapshot.")
def survey_close() -> None:
    _app()
    click.echo(_refused(program.close_survey))


@survey_group.command(
    "schedule",
    help="Set when survey ID[@VERSION] opens and closes by itself (no version: its highest). Times in "
    "PULSE_TIMEZONE, e.g. '2027-01-31 17:00', or ISO 8601 with an offset, within three years; 'none' clears one.",
)
@click.argument("ref", metavar="ID[@VERSION]")
@click.option("--opens", default=None, metavar="TIME", help="When it opens (and becomes current) by itself.")
@click.option("--closes", default=None, metavar="TIME", help="When it closes by itself (with its final snapshot).")
def survey_schedule(ref: str, opens: str | None, closes: str | None) -> None:
    if opens is None and closes is None:
        raise click.UsageError("give --opens TIME, --closes TIME or both ('none' clears one)")
    _app()
    click.echo(_refused(schedules.schedule_survey, ref, opens, closes))


@survey_group.command("list", help="Every stored survey: id@version, title, status, ISO weeks, responses, topic.")
def survey_list() -> None:
    _app()
    rows = [
        (
            ("* " if e.is_current else "  ") + e.ref,
            e.survey.title,
            e.status,
            f"{e.opened_week or '-'}..{e.closed_week if e.closed_week and not e.is_open else ''}",
            str(e.responses),
            e.topic["id"] + " " + e.topic["title"] if e.topic else "-",
            _schedule_cell(e),
        )
        for e in program.entries(counts=True)
    ]
    header = ("  survey", "title", "status", "weeks", "responses", "topic", "schedule")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    click.echo("(* current)")


def _schedule_cell(entry: program.Entry) -> str:
    """A survey's schedule in `pulse survey list`, in PULSE_TIMEZONE, each time with its zone."""
    times = [(word, schedules.shown(at)) for word, at in (("opens", entry.opens_at), ("closes", entry.closes_at))]
    return ", ".join(f"{word} {shown['listed']}" for word, shown in times if shown) or "-"


@main.command(help="End early access: publish a survey's results to everyone.")
@survey_option
def release(survey_ref: str | None) -> None:
    click.echo(_refused(admin_actions.release, _chosen(survey_ref)))


class _InviteCount(_Count):
    """1 to admin_actions.MAX_INVITES, the bound read when a count is given (not when the CLI loads)."""

    def __init__(self) -> None:
        super().__init__(1, None)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        self.max = admin_actions.MAX_INVITES
        return super().convert(value, param, ctx)


@main.command(help="Print N single-use invite codes (for a survey in invite mode).")
@click.argument("n", type=_InviteCount())
def invites(n: int) -> None:
    _app()
    survey = program.current_survey()
    codes = admin_actions.make_invites(survey, n)
    if not survey.invite_only:
        click.echo(
            "note: this survey is not in invite mode (invite_only: false); the codes are not needed yet.", err=True
        )
    click.echo("\n".join(codes))


@main.command("migrate", help="Bring the database schema up to date (serve does this too).")
def migrate_command() -> None:
    app = _app(migrating=True)
    click.echo(f"Schema up to date: {storage.describe(app.config['DATABASE_URL'])}")


@main.command(
    "backup",
    help="Write a consistent copy of everything Pulse stores into FILE, a new SQLite file, "
    "while Pulse keeps serving. FILE must not exist. SECRET_KEY is not in it.",
)
@click.argument("file", type=_Path(dir_okay=False, path_type=Path))
def backup_command(file: Path) -> None:
    app = _app()
    with _progress("Backing up") as progress:
        done = _refused(backup.write_backup, state.of(app).engine, file, progress)
    click.echo(
        f"Backed up {done.rows.get('responses', 0)} responses ({sum(done.rows.values())} rows, "
        f"schema {done.revision}) to {done.path}. Keep it as safe as the database; "
        "restoring it needs the same SECRET_KEY."
    )


@main.command(
    "restore",
    help="Load a backup FILE into the configured database, which must be empty "
    "(a schema alone is fine), then bring it to the current schema.",
)
@click.argument("file", type=_Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(file: Path) -> None:
    app = _app(any_schema=True)
    with _progress("Restoring") as progress:
        rows = _refused(restore.restore_backup, file, state.of(app).engine, progress)
    click.echo(
        f"Restored {rows.get('responses', 0)} responses ({sum(rows.values())} rows) from {file} into "
        f"{storage.describe(app.config['DATABASE_URL'])}. Serve it with the SECRET_KEY of the database it "
        "came from: results keys and the published figures depend on it."
    )


@contextmanager
def _progress(label: str):
    """A progress callback (done, total) drawing a bar on stderr once the work knows its total."""
    with ExitStack() as stack:
        bars = []

        def update(done: int, total: int) -> None:
            if not bars:
                bars.append(stack.enter_context(click.progressbar(length=max(total, 1), label=label, file=sys.stderr)))
            bars[0].update(done - bars[0].pos)

        yield update


# ------------------------------------------------------------------ organisers and community


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


@main.command(
    "create-admin",
    help="Create an organiser account. The password is asked twice "
    "(or read from stdin: the password, optionally again on a second line).",
)
@click.argument("username")
def create_admin(username: str) -> None:
    _app()
    name = _refused(admin_auth.create_admin, username, _read_password())
    click.echo(f"Admin {name!r} created. Log in at /admin.")


@main.command(
    "admin-totp",
    help="Turn on two-step login for an organiser: shows a new secret for an "
    "authenticator app (as a QR code and as text). --off turns it off.",
)
@click.argument("username")
@click.option("--off", is_flag=True, help="Go back to the password alone.")
def admin_totp(username: str, off: bool) -> None:
    _app()
    uri = _refused(lambda: admin_auth.set_totp(username, enable=not off))
    if uri is None:
        click.echo(f"Two-step login is off for {username!r}: the password alone logs in.")
        return
    import segno  # only here: a QR code in the terminal

    segno.make(uri, error="m").terminal(compact=True)
    click.echo(
        f"Scan this in an authenticator app, or enter the secret by hand:\n{uri}\n"
        "From now on the login asks for the app's 6-digit code. Any earlier secret no longer works."
    )


@main.group("topics", help="Moderate proposed topics: list, approve, reject, merge.")
def topics_group() -> None:
    pass


@topics_group.command("list", help="Every topic by state, with its id.")
def topics_list() -> None:
    _app()
    for status, topics in community.moderation_queue().items():
        click.echo(f"{status} ({len(topics)})")
        for t in topics:
            into = f"  -> {t.merged_into}" if t.merged_into else ""
            click.echo(f"  {t.id}  {t.week}  {t.title}{into}")


def _moderate(topic_id: str, action: str, into: str | None = None) -> None:
    _app()
    click.echo(_refused(community.moderate, topic_id, action, into))


@topics_group.command("approve", help="Approve topic ID: it goes on the next round's ballot.")
@click.argument("topic_id", metavar="ID")
def topics_approve(topic_id: str) -> None:
    _moderate(topic_id, "approve")


@topics_group.command("reject", help="Reject topic ID (it also leaves an open round's ballot).")
@click.argument("topic_id", metavar="ID")
def topics_reject(topic_id: str) -> None:
    _moderate(topic_id, "reject")


@topics_group.command("merge", help="Merge topic ID into INTO_ID: ID leaves the ballot, its approvals move to INTO_ID.")
@click.argument("topic_id", metavar="ID")
@click.argument("into_id", metavar="INTO_ID")
def topics_merge(topic_id: str, into_id: str) -> None:
    _moderate(topic_id, "merge", into_id)


@main.group(
    "round", help="Open or close a voting round over the approved topics, schedule its close; choose after a tie."
)
def round_group() -> None:
    pass


@round_group.command("open", help="Open a round over every approved topic.")
@click.option(
    "--closes",
    default=None,
    metavar="TIME",
    help="When it closes by itself (in PULSE_TIMEZONE, e.g. '2027-01-31 17:00').",
)
def round_open(closes: str | None) -> None:
    _app()
    click.echo(_refused(schedules.open_round, closes))


@round_group.command("schedule", help="Set when the open round closes by itself (in PULSE_TIMEZONE); 'none' clears it.")
@click.option("--closes", required=True, metavar="TIME", help="When it closes, e.g. '2027-01-31 17:00', or none.")
def round_schedule(closes: str) -> None:
    _app()
    click.echo(_refused(schedules.schedule_round, closes))


@round_group.command("close", help="Close the open round: the most approved topic is chosen; print the tally.")
def round_close() -> None:
    _app()
    click.echo(wording.round_closed(_refused(community.close_round)))


@round_group.command("choose", help="After a tie, choose TOPIC_ID, one of the tied topics of the latest closed round.")
@click.argument("topic_id", metavar="TOPIC_ID")
def round_choose(topic_id: str) -> None:
    _app()
    click.echo(_refused(community.choose, topic_id))


def run() -> None:
    """The `pulse` entry point (and `python -m survey_app`): always named pulse in messages and --help."""
    main(prog_name=PROG_NAME)
