"""Cell-key perturbation: the shipped table keeps PRODUCT.md's promises, build.py still makes it,
the lookup is the ONS package's, and cell keys follow the set of responses counted.

The table's properties are read from the CSV itself (not through load_ptable), and the lookup is
checked against `cell-key-perturbation`, the ONS's own package: it derives a cell's key from its
records' keys (their sum mod 256), so each cell is given records whose keys add up to Pulse's key.
"""

from __future__ import annotations

import configparser
import contextlib
import fnmatch
import io
import random
import sys
import uuid
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survey_app.pipeline.disclosure import Disclosure, Noise
from survey_app.pipeline.perturbation import (
    PTable,
    PTableError,
    cell_keys,
    combine_digests,
    default_path,
    load_ptable,
    set_digest,
)
from survey_app.pipeline.tallies import tally
from survey_app.ptables import build
from survey_app.questions import load_survey

from .helpers import ROOT

SURVEY = load_survey(ROOT / "questions.yaml")
SHIPPED = ROOT / "survey_app" / "ptables" / "pulse_k5.csv"
# PRODUCT.md, "Disclosure control": small-count k, the largest change (for counts from 10), the
# variance of the change there, and how likely its likeliest outcome may be.
K, MAX_CHANGE, REGULAR_FROM, VARIANCE, MAX_SHARE = 5, 4, 10, (2.0, 3.0), 0.35
CKEYS = 256
NOISE_KEY = b"perturbation-test-key"
# Counts the lookup is checked on: every count up to 2000, well past the rows the tables hold.
COUNTS = np.arange(0, 2001)


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    return pd.read_csv(SHIPPED)


def outputs(df: pd.DataFrame) -> dict[int, Counter]:
    """Per true count (pcv), how many of the 256 cell keys publish each value."""
    return {int(pcv): Counter((pcv + g["pvalue"]).tolist()) for pcv, g in df.groupby("pcv")}


def uuids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


# ---------------------------------------------------------------------------- the shipped table


def test_the_shipped_table_is_the_default_and_complete(shipped):
    assert default_path().resolve() == SHIPPED.resolve()
    assert list(shipped.columns) == ["pcv", "ckey", "pvalue"]
    assert not shipped.duplicated(["pcv", "ckey"]).any()
    top = int(shipped["pcv"].max())
    assert shipped["pcv"].min() == 1 and top == build.MAX_PCV and top >= 250
    for pcv, g in shipped.groupby("pcv"):
        assert sorted(g["ckey"]) == list(range(CKEYS)), pcv
    table = load_ptable()
    assert table.max_pcv == top
    assert (table.values[shipped["pcv"], shipped["ckey"]] == shipped["pvalue"]).all()


def test_the_shipped_table_is_unbiased(shipped):
    """The expected published count is the true count, exactly: over the 256 equally likely keys
    the changes add up to 0 for every count."""
    sums = shipped.groupby("pcv")["pvalue"].sum()
    assert (sums == 0).all(), sums[sums != 0].to_dict()


def probabilities(counter: Counter, count: int) -> dict[int, float]:
    """Per change, the share of cell keys that make it."""
    return {v - count: k / CKEYS for v, k in counter.items()}


def test_counts_of_ten_or_more_have_tails(shipped):
    """PRODUCT.md: from 10 up the change runs over -4..+4, each side falling as the change grows
    (no flat plateau), no outcome more than 35% likely, a variance between 2 and 3."""
    for count, counter in outputs(shipped).items():
        if count < REGULAR_FROM:
            continue
        p = probabilities(counter, count)
        assert set(p) == set(range(-MAX_CHANGE, MAX_CHANGE + 1)), count
        for d in range(MAX_CHANGE):
            assert p[d] > p[d + 1] and p[-d] > p[-d - 1], (count, p)
        assert max(p.values()) <= MAX_SHARE, count
        variance = sum(d * d * share for d, share in p.items())
        assert VARIANCE[0] <= variance <= VARIANCE[1], (count, variance)


def test_counts_five_to_nine_take_the_shape_as_far_as_unbiasedness_allows(shipped):
    """From k to 9 the count cannot fall by up to 4 without landing on 1..k-1: it may fall to 0
    instead. It is never published as itself with certainty, its outcomes of k or more fall away
    from it on each side, and from 9 up the row is the shape itself."""
    published = outputs(shipped)
    shape = probabilities(published[REGULAR_FROM], REGULAR_FROM)
    for count in range(K, REGULAR_FROM):
        counter = published[count]
        assert counter[count] < CKEYS and max(counter.values()) <= MAX_SHARE * CKEYS, (count, counter)
        above = [counter[v] for v in range(count, count + MAX_CHANGE + 1)]
        below = [counter[v] for v in range(count, K - 1, -1)]
        assert above == sorted(above, reverse=True) and below == sorted(below, reverse=True), (count, counter)
        assert max(abs(v - count) for v in counter if v) <= MAX_CHANGE, count
    assert probabilities(published[REGULAR_FROM - 1], REGULAR_FROM - 1) == shape


def test_no_count_is_published_as_itself_for_sure(shipped):
    """A count always shown as itself could be read exactly by differencing two snapshots."""
    for count, counter in outputs(shipped).items():
        assert counter[count] < CKEYS, count


def test_small_counts_show_as_zero_or_k_and_more(shipped):
    """No count is ever published as 1..k-1: small counts go to 0 or k+."""
    published = outputs(shipped)
    for pcv in range(1, K):
        assert published[pcv][0] > 0 and sum(published[pcv].values()) == CKEYS
        assert max(published[pcv]) <= K + MAX_CHANGE, pcv
    for pcv, values in published.items():
        assert not set(values) & set(range(1, K)), pcv


def test_zero_stays_zero(shipped):
    assert 0 not in set(shipped["pcv"])  # as in the ONS format: no row for 0
    table = load_ptable()
    keys = np.arange(CKEYS)
    assert (table.perturb(np.zeros(CKEYS, dtype=np.int64), keys) == 0).all()


def test_the_promises_hold_for_every_count_through_the_lookup():
    """Counts above the table's rows are looked up in its last 250: the same promises hold there."""
    table = load_ptable()
    counts = np.repeat(COUNTS, CKEYS)
    keys = np.tile(np.arange(CKEYS), len(COUNTS))
    change = (table.perturb(counts, keys) - counts).reshape(len(COUNTS), CKEYS)
    published = counts.reshape(len(COUNTS), CKEYS) + change
    assert (change.sum(axis=1) == 0).all()  # unbiased
    assert np.abs(change[REGULAR_FROM:]).max() == MAX_CHANGE  # moves <= 4 from 10
    variance = (change[REGULAR_FROM:] ** 2).mean(axis=1)
    assert ((variance >= VARIANCE[0]) & (variance <= VARIANCE[1])).all()
    assert not ((published >= 1) & (published < K)).any()  # never 1..k-1
    assert (published[0] == 0).all()
    assert ((published == counts.reshape(len(COUNTS), CKEYS)).mean(axis=1)[1:] <= MAX_SHARE).all()


def test_the_api_describes_the_table():
    described = load_ptable().describe()
    assert described["method"] == "cell-key perturbation"
    assert (described["max_change"], described["small_counts"], described["from"]) == (MAX_CHANGE, "0 or 5+", 10)
    changes = {c["change"]: c["probability"] for c in described["changes"]}
    assert list(changes) == list(range(-MAX_CHANGE, MAX_CHANGE + 1))
    assert abs(sum(changes.values()) - 1) < 0.01 and changes[0] == max(changes.values())
    assert Disclosure().describe() == described
    assert (load_ptable().smallest_shown, load_ptable().max_change) == (K, MAX_CHANGE)


def test_a_published_count_never_exceeds_its_rows_n():
    """Noise caps every cell at its row's n: a cell that everyone chose may move up, never past n."""
    rules = Disclosure(key=NOISE_KEY)
    table = rules.ptable
    ns = list(range(1, 60)) + [100, 260, 261, 1000]
    above_n = 0
    for digest in range(200):
        noise = Noise(rules, SURVEY, digest)
        names = [f"cell/{n}" for n in ns]
        published = noise.counts(names, ns, ns)
        assert all(0 <= p <= n for p, n in zip(published, ns)), digest
        raw = table.perturb(np.array(ns), cell_keys(NOISE_KEY, SURVEY.id, SURVEY.version, digest, names))
        above_n += int((raw > np.array(ns)).sum())
        # the cap is the row's n, not some other bound: with a larger cap the raw value comes back
        assert noise.counts(names, ns, [n + 10 for n in ns]) == published  # a name is one cell
        fresh = Noise(rules, SURVEY, digest).counts(names, ns, [n + 10 for n in ns])
        assert fresh == np.maximum(raw, 0).tolist()
    assert above_n > 0  # without the cap some counts would show above n: the cap does something


# ---------------------------------------------------------------------------- the builder


@pytest.mark.parametrize("count", [*range(1, 13), 100, 260])
def test_the_builder_makes_the_shipped_rows(shipped, count):
    """build.py's integer program for this count gives the shipped row, or (solver ties may differ
    between scipy versions) a row as close to the shape, equally unbiased."""
    allowed = build.outcomes(count)
    made = build.allocate(count)
    row = outputs(shipped)[count]
    assert set(made) <= set(allowed) and set(row) <= set(allowed)
    assert sum(made.values()) == CKEYS
    assert sum((v - count) * k for v, k in made.items()) == 0
    want = build.target(count)

    def moved(r):
        return sum(abs(r.get(v, 0) - want[v]) for v in allowed)

    assert moved(made) == moved(row)


def test_the_builder_makes_the_rules_of_the_product():
    assert (build.K, build.MAX_CHANGE, build.SHAPE_FROM, build.CKEYS) == (K, MAX_CHANGE, REGULAR_FROM - 1, CKEYS)
    assert build.VARIANCE_RANGE == VARIANCE and build.MAX_SHARE == MAX_SHARE
    assert build.OUT.resolve() == SHIPPED.resolve()


def test_the_shipped_table_is_package_data():
    """`pip install .` (CI's and a deployment's install) must carry the table: the default path is
    inside the installed package."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    globs = parser["options.package_data"]["survey_app"].split()
    assert any(fnmatch.fnmatch("ptables/pulse_k5.csv", g) for g in globs), globs


# ---------------------------------------------------------------------------- the ONS lookup


def ons_ptable_path() -> Path:
    """ptable_10_5_rule.csv as the installed `cell-key-perturbation` ships it (its wheel puts it in
    the data directory, under sys.prefix)."""
    try:
        dist = metadata.distribution("cell-key-perturbation")
    except metadata.PackageNotFoundError:
        pytest.fail("cell-key-perturbation is not installed: pip install '.[test]'")
    for f in dist.files or []:
        if f.name == "ptable_10_5_rule.csv" and Path(dist.locate_file(f)).is_file():
            return Path(dist.locate_file(f)).resolve()
    found = sorted(Path(sys.prefix).rglob("ptable_10_5_rule.csv"))
    assert found, f"ptable_10_5_rule.csv not found under {sys.prefix}"
    return found[0]


def ons_published(ptable: pd.DataFrame, counts: np.ndarray, ckeys: np.ndarray, seed: int = 0) -> np.ndarray:
    """The ONS package's published count of cells with these true counts (each at least 1) and
    cell keys: each cell gets `count` records whose record keys add up, mod 256, to its key."""
    from cell_key_perturbation.create_perturbed_table import create_perturbed_table

    assert (counts >= 1).all()
    rng = np.random.default_rng(seed)
    cell = np.repeat(np.arange(len(counts)), counts)
    record_key = rng.integers(0, CKEYS, len(cell))
    last = np.cumsum(counts) - 1  # each cell's last record makes the sum come out right
    sums = np.bincount(cell, weights=record_key, minlength=len(counts)).astype(np.int64)
    record_key[last] = (record_key[last] + ckeys - sums) % CKEYS
    data = pd.DataFrame({"cell": cell, "record_key": record_key})
    assert ((data.groupby("cell")["record_key"].sum() % CKEYS).to_numpy() == ckeys).all()
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints as it validates
        out = create_perturbed_table(
            data=data, ptable=ptable, geog=[], tab_vars=["cell"], record_key="record_key", threshold=0
        )
    out = out.set_index("cell").sort_index()
    assert out.index.tolist() == list(range(len(counts)))
    assert (out["pre_sdc_count"].to_numpy() == counts).all() and (out["ckey"].to_numpy() == ckeys).all()
    return out["count"].astype("int64").to_numpy()


def as_ons_table(df: pd.DataFrame) -> pd.DataFrame:
    """A table in the 750 rows the ONS package reads (it hard-codes rows 501-750 for counts above
    750): a shorter table is padded with its last 250 rows in turn, row r being row r - 250."""
    top = int(df["pcv"].max())
    rows = {pcv: g for pcv, g in df.groupby("pcv")}
    parts = [df]
    for pcv in range(top + 1, 751):
        parts.append(rows[pcv - 250 * -(-(pcv - top) // 250)].assign(pcv=pcv))
    return pd.concat(parts, ignore_index=True)


def pulse_cells(counts: np.ndarray, digest: int) -> tuple[list[str], np.ndarray]:
    names = [f"q/test/{c}" for c in counts]
    return names, cell_keys(NOISE_KEY, SURVEY.id, SURVEY.version, digest, names)


@pytest.mark.parametrize("which", ["pulse", "ons"])
def test_the_lookup_matches_the_ons_package(which):
    """PTable.perturb gives what the ONS package publishes (threshold 0: no suppression), for
    every count up to 2000 with Pulse's cell keys, and for every key on the counts where the
    lookup turns (the table's end, 750, and the cycle of 250 above it)."""
    path = SHIPPED if which == "pulse" else ons_ptable_path()
    table = load_ptable(path)
    reference = as_ons_table(pd.read_csv(path))
    counts = COUNTS[COUNTS > 0]
    _, keys = pulse_cells(counts, digest=12345)
    assert len(set(keys.tolist())) > 200  # the keys really vary
    assert (table.perturb(counts, keys) == ons_published(reference, counts, keys)).all()
    turns = np.array(
        [
            *range(1, 13),
            249,
            250,
            251,
            259,
            260,
            261,
            262,
            499,
            500,
            501,
            510,
            511,
            749,
            750,
            751,
            752,
            1000,
            1001,
            1250,
            1251,
            1999,
            2000,
        ]
    )
    counts = np.repeat(turns, CKEYS)
    keys = np.tile(np.arange(CKEYS), len(turns))
    assert (table.perturb(counts, keys) == ons_published(reference, counts, keys, seed=1)).all()


def test_an_empty_cell_stays_empty_as_in_the_ons_package():
    """The ONS package never tabulates an empty cell from microdata; its ptables have no row for 0
    and a missing row adds 0 (its left join fills 0). Pulse: 0 stays 0 whatever the key or table."""
    for path in (SHIPPED, ons_ptable_path()):
        assert 0 not in set(pd.read_csv(path)["pcv"])
        assert (load_ptable(path).perturb(np.zeros(CKEYS, dtype=np.int64), np.arange(CKEYS)) == 0).all()


@pytest.mark.parametrize(
    "top",
    [
        750,
        500,
        300,
        261,
        263,
        333,
    ],
)
def test_counts_above_a_shorter_table_are_looked_up_as_ons_does(tmp_path, top):
    """PULSE_PTABLE may name a table of any length. ONS's 10-5 table repeats every 5 rows from row
    10 on, so cutting it short (at 259 or more) loses nothing under ONS's rule, where rows are
    reused in cycles of 250, each count above the table on the row 250, 500, ... below it: the cut
    table must publish exactly what the ONS package publishes with the whole one, and so keep the
    10-5 rule's promise (counts of 10 or more publish as multiples of 5)."""
    full = pd.read_csv(ons_ptable_path())
    cut = tmp_path / f"ptable_cut_{top}.csv"
    full[full["pcv"] <= top].to_csv(cut, index=False)
    table = load_ptable(cut)
    assert table.max_pcv == top
    # The 10-5 table's changes depend on the count alone: four keys per count are plenty.
    around = np.arange(top - 5, top + 260)
    counts = np.repeat(around, 4)
    keys = np.tile([0, 85, 170, 255], len(around))
    published = table.perturb(counts, keys)
    assert (published % 5 == 0).all()
    assert (published == ons_published(full, counts, keys)).all()


# ---------------------------------------------------------------------------- loading a table


def ptable_lines(top: int = 250) -> list[str]:
    return ["pcv,ckey,pvalue"] + [f"{p},{c},0" for p in range(1, top + 1) for c in range(CKEYS)]


def line_of(lines: list[str], pcv: int, ckey: int) -> int:
    return lines.index(f"{pcv},{ckey},0") + 1


def with_line(lines: list[str], number: int, text: str) -> list[str]:
    return lines[: number - 1] + [text] + lines[number:]


def bad_tables() -> list:
    lines = ptable_lines()
    at = line_of(lines, 7, 3)
    return [
        pytest.param(["pcv,key,pvalue"] + lines[1:], 1, "header", id="bad-header"),
        pytest.param([], 1, "header", id="empty-file"),
        pytest.param(with_line(lines, at, "7,three,0"), at, "whole numbers", id="non-numeric"),
        pytest.param(with_line(lines, at, "7,3,1.5x"), at, "whole numbers", id="non-numeric-pvalue"),
        pytest.param(with_line(lines, at, "7,,0"), at, "", id="empty-ckey"),
        pytest.param(with_line(lines, at, "7,0"), at, "", id="row-without-ckey"),
        pytest.param(with_line(lines, at, "7,256,0"), at, "ckey", id="ckey-out-of-range"),
        pytest.param(with_line(lines, at, "0,3,0"), at, "pcv", id="pcv-zero"),
        pytest.param(with_line(lines, at, "7,3,-8"), at, "negative", id="count-made-negative"),
        pytest.param(lines[:at] + [lines[at - 1]] + lines[at:], at + 1, "twice", id="duplicate-row"),
    ]


@pytest.mark.parametrize("lines, line, words", bad_tables())
def test_a_bad_table_names_its_file_and_line(tmp_path, lines, line, words):
    path = tmp_path / "my_ptable.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PTableError) as err:
        load_ptable(path)
    message = str(err.value)
    assert str(path) in message and f"line {line}:" in message and words in message


@pytest.mark.parametrize(
    "lines, words",
    [
        pytest.param(ptable_lines(249), "at least 250", id="shorter-than-250-rows"),
        pytest.param([x for x in ptable_lines(260) if x != "200,17,0"], "pcv 200, ckey 17", id="missing-ckey"),
    ],
)
def test_a_table_missing_rows_names_its_file_and_what_is_missing(tmp_path, lines, words):
    path = tmp_path / "short.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PTableError) as err:
        load_ptable(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(PTableError, match="nowhere.csv"):
        load_ptable(tmp_path / "nowhere.csv")


def test_a_good_table_loads(tmp_path):
    path = tmp_path / "ok.csv"
    lines = ptable_lines(250)
    # quoted header (as ONS writes it), rows in any order, a blank line, 0 <= pcv + pvalue
    path.write_text('"pcv","ckey","pvalue"\n' + "\n".join(reversed(lines[1:])) + "\n\n", encoding="utf-8")
    assert load_ptable(path).max_pcv == 250
    assert isinstance(load_ptable(path), PTable)


# ---------------------------------------------------------------------------- digests and keys


def test_set_digest_is_the_sum_of_the_ids():
    ids = uuids(500, 1) + ["ffffffff-ffff-4fff-bfff-ffffffffffff"] * 3  # sums past 2**128 wrap around
    assert set_digest(ids) == sum(uuid.UUID(x).int for x in ids) % 2**128
    assert set_digest([]) == 0
    assert set_digest(ids[:1]) == uuid.UUID(ids[0]).int
    many = ["ffffffff-ffff-ffff-ffff-ffffffffffff"] * 100_000  # the column sums stay exact
    assert set_digest(many) == (100_000 * (2**128 - 1)) % 2**128


def test_set_digest_is_order_independent_and_incremental():
    a, b = uuids(300, 2), uuids(40, 3)
    assert set_digest(a) == set_digest(random.Random(4).sample(a, len(a)))
    assert (set_digest(a) + set_digest(b)) % 2**128 == set_digest(a + b)
    assert combine_digests(set_digest(a), set_digest(b)) == set_digest(a + b)
    assert combine_digests(set_digest(a + b), set_digest(b), -1) == set_digest(a)
    assert set_digest(a[:-1] + uuids(1, 5)) != set_digest(a)  # any change of the set shows
    # A snapshot's tally carries it, and adding a batch adds the batch's digest.
    rows = ['{"practice_type": "psychiatry"}'] * (len(a) + len(b))
    ta, tb = tally(SURVEY, rows[: len(a)], a), tally(SURVEY, rows[len(a) :], b)
    assert ta.digest == set_digest(a) and (ta + tb).digest == tally(SURVEY, rows, a + b).digest
    assert (ta + tb - tb).digest == ta.digest


def test_cell_keys_are_deterministic_and_in_range():
    names = [f"q/first_followup/{o}" for o in SURVEY.question("first_followup").option_keys] * 2
    keys = cell_keys(NOISE_KEY, SURVEY.id, SURVEY.version, 42, names)
    assert keys.dtype.kind == "i" and ((keys >= 0) & (keys < CKEYS)).all()
    assert (keys == cell_keys(NOISE_KEY, SURVEY.id, SURVEY.version, 42, names)).all()
    assert (keys[:6] == keys[6:]).all()  # a name is one cell
    spread = cell_keys(NOISE_KEY, SURVEY.id, SURVEY.version, 42, [f"cell/{i}" for i in range(20_000)])
    counts = np.bincount(spread, minlength=CKEYS)
    assert counts.min() > 40 and counts.max() < 120  # about 78 each: every key drawn, none favoured


@pytest.mark.parametrize(
    "change",
    [{"digest": 99}, {"key": b"another-key"}, {"survey_id": "another"}, {"version": 2}],
    ids=["digest", "key", "survey", "version"],
)
def test_cell_keys_draw_afresh_for_another_set_or_secret(change):
    """A new snapshot (another set of responses, so another digest) draws afresh, and so does
    another secret or survey: over many cells the keys are not all equal."""
    names = [f"cell/{i}" for i in range(400)]
    args = {"key": NOISE_KEY, "survey_id": SURVEY.id, "version": SURVEY.version, "digest": 98}
    mine, theirs = cell_keys(names=names, **args), cell_keys(names=names, **(args | change))
    assert (mine == cell_keys(names=names, **args)).all()
    assert (mine != theirs).any()
    assert (mine == theirs).mean() < 0.05  # independent draws agree about 1 time in 256
