"""The table SECURITY.md quotes: the strongest attacker we know against every row of issue 19.

Rows: 20 and 60 other clinics x own budgets of 1x, 2x, 7x and 15x their number, the attacker
triggering snapshots before and after the victim's response (every split of the budget is
tried; the row shows the split with the largest edge), then the same with the organisers
closing the survey right after the victim, then the control (exact counts, 20 others, 7x).
The attacker is tests/attacker.py (the suite runs one row of it); the table, the snapshot rule
and the settings are the product's defaults. Beside it: the mean absolute error of a published
share at N = 60 against the truth, for the old flat table (c-2..c+2, read from git history into
memory) and the shipped one. Run on its own, never inside the tests:

    python benchmarks/attacks.py                      # every row, 300 trials each
    python benchmarks/attacks.py --trials 60 --rows 20x7,60x15,20x7c --jobs 2
    python benchmarks/attacks.py --rows none --e2e 5  # 5 trials end to end through `pulse serve`
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from survey_app import demo  # noqa: E402
from survey_app.pipeline import publishing  # noqa: E402
from survey_app.pipeline.disclosure import Disclosure  # noqa: E402
from survey_app.pipeline.perturbation import CKEYS, PTable  # noqa: E402
from tests import attacker  # noqa: E402
from tests.attacker import SURVEY, Row  # noqa: E402

KEY = b"attack-benchmark-noise-key"
# The flat table Pulse shipped before issue 19 (c-2..c+2 about equally likely), for comparison only.
OLD_TABLE = ("a8ba3e8", "survey_app/ptables/pulse_k5.csv")
ROWS = "20x1,20x2,20x7,20x15,60x1,60x2,60x7,60x15,20x1c,20x2c,20x7c,20x15c,60x1c,60x2c,60x7c,60x15c,20x7x"


def parse_rows(text: str) -> list[tuple[Row, bool]]:
    """'20x7' (20 others, 7x budget), '20x7c' (close variant), '20x7x' (exact counts): (row, exact)."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        if item == "none":
            continue
        close, exact = item.endswith("c"), item.endswith("x") and item.count("x") == 2
        others, times = item.rstrip("cx").split("x")
        out.append((Row(int(others), int(others) * int(times), close), exact))
    return out


def old_table() -> PTable:
    """The old flat table from git history, into memory (never written into the package)."""
    commit, path = OLD_TABLE
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    rows = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.int64)
    values = np.zeros((rows[:, 0].max() + 1, CKEYS), dtype=np.int64)
    values[rows[:, 0], rows[:, 1]] = rows[:, 2]
    return PTable(values, f"{path} at {commit}")


def _trial(args):
    row, seed, table, exact, growth = args
    rules = Disclosure(key=KEY, ptable=table)
    return attacker.run_trial(row, seed, attacker.exact_counts(rules) if exact else rules, growth)


def run(row: Row, exact: bool, trials: int, table: PTable, jobs: int, growth: float | None):
    seed0 = 1_000_000 * row.others + 1_000 * (row.budget // row.others) + 500 * row.close
    work = [(row, seed0 + i, table, exact, growth) for i in range(trials)]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            outcomes = pool.map(_trial, work, chunksize=max(1, trials // (4 * jobs)))
    else:
        outcomes = [_trial(w) for w in work]
    return attacker.summarise(row, outcomes, growth)


def mae(table: PTable, trials: int, n: int = 60) -> float:
    """Mean absolute error of a published share (points) against the truth, overall cells, N = n."""
    rules = Disclosure(key=KEY, ptable=table)
    errors = []
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        answers = list(demo.synthetic_answers(SURVEY, n, rng))
        truth = attacker.counts_of(answers)
        body = publishing.publish(SURVEY, attacker._counted(answers, rng), rules, True).to_json()
        errors += [
            abs(c["count"] - truth.get((q["key"], c["key"]), 0)) * 100 / q["n"]
            for q in body["questions"]
            for c in q["options"]
        ]
    return float(np.mean(errors))


def fmt(r: attacker.Result, row: Row, exact: bool) -> str:
    variant = "exact counts (control)" if exact else ("close after the victim" if row.close else "after the victim")
    bar = "meets the bar" if attacker.passes(r) else "FAILS the bar"
    scale = f"/{r.trials}"
    return (
        f"| {row.others} | {variant} | {row.budget} ({row.budget // row.others}x) | {r.own} | {r.snapshots} | "
        f"{r.split[0]}/{r.split[1]} | "
        f"{r.rate:.0f}% vs {r.plain:.0f}% ({r.edge:+.1f}) | {r.whole}{scale} | {r.six}{scale} | "
        f"{r.rate_alone:.0f}% ({r.edge_alone:+.1f}), {r.whole_alone}{scale}, {r.six_alone}{scale} | {bar} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="seeded trials per row")
    parser.add_argument("--rows", default=ROWS, help="comma-separated: 20x7, 20x7c (close), 20x7x (exact); none")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (the machine has 2 cores)")
    parser.add_argument("--table", choices=("shipped", "old"), default="shipped", help="the table attacked")
    parser.add_argument("--growth", type=float, default=None, help="PULSE_SNAPSHOT_GROWTH (default: the product's)")
    parser.add_argument("--all-splits", action="store_true", help="a line for every split, not only the best")
    parser.add_argument("--mae-trials", type=int, default=300, help="surveys of 60 for the share error (0: skip)")
    parser.add_argument("--e2e", type=int, default=0, help="trials end to end through `pulse serve`")
    parser.add_argument("--e2e-row", default="20x7", help="the row run end to end (after the victim)")
    parser.add_argument(
        "--e2e-before",
        type=int,
        default=None,
        help="snapshots before the victim end to end (default: the row's best split, or 0)",
    )
    args = parser.parse_args()
    table = old_table() if args.table == "old" else Disclosure().ptable
    growth = args.growth if args.growth is not None else attacker.DEFAULTS["PULSE_SNAPSHOT_GROWTH"]
    print(
        f"table: {table.source}; snapshot growth {growth}, at least {attacker.DEFAULTS['PULSE_SNAPSHOT_MIN_NEW']} "
        f"new; {args.trials} seeded trials per row; split = snapshots before/after the victim\n"
    )
    rows = parse_rows(args.rows)
    if rows:
        print(
            "| other clinics | variant | budget | own responses sent | snapshots read | split | attacker per "
            "question vs plain guess (edge) | whole response | 6+ of 8 right | without group evidence: per "
            "question, whole, 6+ | bar |"
        )
        print("| ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | --- |")
    best: dict[Row, attacker.Result] = {}
    started = time.perf_counter()
    timing = []
    for row, exact in rows:
        start = time.perf_counter()
        results = run(row, exact, args.trials, table, args.jobs, args.growth)
        top = attacker.best(results)
        if not exact:
            best[row] = top
        for r in results if args.all_splits else [top]:
            print(fmt(r, row, exact), flush=True)
        timing.append((row, exact, len(results), (time.perf_counter() - start) / args.trials))
    if timing:
        print(
            f"\n{time.perf_counter() - started:.0f} s for the table ({args.jobs} job(s)); per trial (all splits): "
            + ", ".join(
                f"{r.others}x{r.budget // r.others}{'c' if r.close else ''}{'x' if e else ''} {t:.2f} s ({k} splits)"
                for r, e, k, t in timing
            )
        )
    if args.mae_trials:
        start = time.perf_counter()
        print(
            f"\nmean absolute error of a published share at N = 60 ({args.mae_trials} surveys, every overall "
            f"cell): old flat table {mae(old_table(), args.mae_trials):.2f} points, shipped table "
            f"{mae(Disclosure().ptable, args.mae_trials):.2f} points ({time.perf_counter() - start:.0f} s)"
        )
    if args.e2e:
        end_to_end(args, best)


def end_to_end(args, best: dict) -> None:
    ((row, _),) = parse_rows(args.e2e_row)
    before = args.e2e_before if args.e2e_before is not None else (best[row].split[0] if row in best else 0)
    outcomes, start = [], time.perf_counter()
    for i in range(args.e2e):
        with tempfile.TemporaryDirectory() as tmp:
            victim, readings, outcome = attacker.end_to_end(Path(tmp), row, seed=50_000 + i, before=before)
        outcomes.append(outcome)
        # The served numbers are ones the attacker's model allows for the true counts (as in the simulation).
        _, others = attacker.clinics(row, np.random.default_rng(50_000 + i))
        lik = attacker.likelihood(Disclosure().ptable, attacker.top_count(row))
        odd = sum(len(attacker.impossible(r, others + r.own + ([victim] if r.victim else []), lik)) for r in readings)
        print(
            f"  end to end trial {i + 1}: {sum(outcome.groups)}/8 right ({sum(outcome.alone)} without groups, "
            f"plain {sum(outcome.plain)}); N read: {[r.body['responses'] for r in readings]}; cells the model "
            f"calls impossible: {odd}",
            flush=True,
        )
    rate = 100 * np.mean([o.groups for o in outcomes])
    plain = 100 * np.mean([o.plain for o in outcomes])
    whole = sum(all(o.groups) for o in outcomes)
    six = sum(sum(o.groups) >= 6 for o in outcomes)
    print(
        f"\nend to end through `pulse serve` ({row.name}, {before} snapshot(s) before the victim, "
        f"{outcomes[0].own} own responses, {outcomes[0].snapshots} snapshots): {rate:.0f}% vs {plain:.0f}% "
        f"({rate - plain:+.1f}), whole response {whole}/{len(outcomes)}, 6+ of 8 {six}/{len(outcomes)}; "
        f"{(time.perf_counter() - start) / len(outcomes):.1f} s per trial"
    )


if __name__ == "__main__":
    main()
