"""The benchmark: count state (Tally), disclosure-safe figures, a participant's view, CSV rows.

Pure: imports neither Flask nor the database. A snapshot stores a Tally (counts only), so a
rebuild adds new responses to the old counts, and the published body derived from it.

tally() reads answers as json.dumps writes them (any separators, key order or ensure_ascii)
after validate_answers: it finds the quoted strings with numpy instead of parsing each row.
Suppression models what a reader knows as a flow network (every published total balances
at a vertex) and asks, per hidden cell, whether a cycle of hidden cells can move it.
"""
from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .questions import INDEX_MAX, Survey, as_tuple

# Two-sided 95% normal quantile for the Wilson interval.
Z95 = 1.959963984540054
PERCENTILES = (10, 25, 50, 75, 90)
# Histogram bins of 10 points; the last one is 90-100 so that 100 has a home.
BINS = tuple((lo, lo + 9) for lo in range(0, 90, 10)) + ((90, INDEX_MAX),)
# A figure from fewer respondents, or with a wider interval (in points), carries a caution.
CAUTION_N = 30
CAUTION_WIDTH = 30
# Key of the merged segment group, and the segment/outcome value of a response lacking it.
OTHER = "other"
UNKNOWN = ""
# Responses tokenised at once: bounds memory to roughly 1 KB per response in the chunk.
CHUNK_ROWS = 200_000
HIDDEN_NOTE = ("Cells marked suppressed stand for 1 to {m} clinics, for all but 1 to {m} of them, "
               "or are hidden so that such a cell cannot be worked out from the totals.")


@dataclass(frozen=True)
class Disclosure:
    release_threshold: int = 10
    k: int = 5
    segment_min: int = 10

    @property
    def group_min(self) -> int:
        """The smallest segment group shown: segment_min, never below k."""
        return max(self.segment_min, self.k)

    def hides(self, count: int, total: int) -> bool:
        """Primary suppression: counts 1..k-1 and N-k+1..N-1 of a distribution of N."""
        # Never 0 or N, even when k > N: "a hidden cell is never 0 or N" is what readers assume.
        return 0 < count < total and (count < self.k or count > total - self.k)


# ---------------------------------------------------------------------------- count state

_KEYS = {"options": ("segment", "question", "option"), "answered": ("segment", "question"),
         "index": ("segment", "outcome", "value")}


def _normal(df: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """Counts summed per key, zero rows dropped, sorted by key: one frame per count state."""
    df = df.astype({k: ("int64" if k == "value" else str) for k in keys} | {"count": "int64"})
    df = df.groupby(list(keys), as_index=False, sort=True)["count"].sum()
    return df[df["count"] != 0].reset_index(drop=True)


@dataclass(eq=False)
class Tally:
    """Counts of a set of responses: options and answers by segment, index by segment and outcome."""

    options: pd.DataFrame
    answered: pd.DataFrame
    index: pd.DataFrame

    def __post_init__(self):
        for name, keys in _KEYS.items():
            setattr(self, name, _normal(getattr(self, name), keys))

    @property
    def n(self) -> int:
        """Number of responses counted (every response has exactly one index row)."""
        return int(self.index["count"].sum())

    def _combine(self, other: Tally, sign: int) -> Tally:
        parts = {}
        for name, keys in _KEYS.items():
            theirs = getattr(other, name).assign(count=lambda d: d["count"] * sign)
            both = pd.concat([getattr(self, name), theirs], ignore_index=True)
            parts[name] = both.groupby(list(keys), as_index=False)["count"].sum()
            if (parts[name]["count"] < 0).any():
                raise ValueError("cannot remove responses that this tally does not count")
        return Tally(**parts)

    def __add__(self, other: Tally) -> Tally:
        return self._combine(other, 1)

    def __sub__(self, other: Tally) -> Tally:
        return self._combine(other, -1)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tally) and self.to_json() == other.to_json()

    def to_json(self) -> dict:
        """Plain lists of [keys..., count], sorted by key: exact and JSON-serialisable."""
        return {name: [list(r) for r in zip(*(getattr(self, name)[c].tolist() for c in (*keys, "count")))]
                for name, keys in _KEYS.items()}

    @classmethod
    def from_json(cls, data: dict) -> Tally:
        """The Tally that to_json() described."""
        return cls(**{name: pd.DataFrame(data.get(name) or [], columns=[*keys, "count"])
                      for name, keys in _KEYS.items()})


# ---------------------------------------------------------------------------- tallying

# Fingerprint mixing constant (64-bit golden ratio) and masks keeping the first i bytes of a word.
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(9)], dtype=np.uint64)


@dataclass
class _Layout:
    """How one survey's answers map onto indicator columns, and how tokens are recognised."""

    columns: list[tuple[str, str]]
    words: int
    hashes: np.ndarray
    table: np.ndarray
    q_of: np.ndarray
    col_of: np.ndarray
    seg: tuple[int, int]
    out: tuple[int, int]
    points: np.ndarray
    rule_of: np.ndarray
    rules: list[tuple[int, int, int]]


def _fingerprints(buf: np.ndarray, start: np.ndarray, length: np.ndarray, words: int) -> np.ndarray:
    """A 64-bit fingerprint of each token: its length and first 8*words bytes."""
    win = np.lib.stride_tricks.sliding_window_view(buf, 8)
    h = length.astype(np.uint64)
    for w in range(words):
        word = win[start + 8 * w].view("<u8")[:, 0]
        h = (h * _MIX) ^ (word & _MASKS[np.clip(length - 8 * w, 0, 8)])
    return h


def _scan(blob: bytes, words: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The padded byte buffer and the opening and closing quote of every JSON string."""
    buf = np.frombuffer(blob + b"\0" * (8 * words + 8), dtype=np.uint8)
    quotes = np.flatnonzero(buf == 34)
    quotes = quotes[: len(quotes) // 2 * 2]
    return buf, quotes[0::2], quotes[1::2]


def _block(columns: list[tuple[str, str]], key: str | None) -> tuple[int, int]:
    """First and end column of a question's options (empty for None)."""
    cols = [i for i, (q, _) in enumerate(columns) if q == key]
    return (cols[0], cols[-1] + 1) if cols else (0, 0)


@lru_cache(maxsize=16)
def _layout(survey: Survey) -> _Layout:
    """Indicator columns, token table and vectorised scoring for a survey."""
    columns = [(q.key, o.key) for q in survey.questions for o in q.options]
    vocab = sorted({q for q, _ in columns} | {o for _, o in columns})
    buf, op, cl = _scan(",".join(json.dumps(v, ensure_ascii=False) for v in vocab).encode(), 8)
    # Fewest 8-byte words that tell the survey's keys apart: answers were validated against
    # them, so every token is one of them and a longer look would only cost time.
    for words in range(1, max(len(v.encode()) for v in vocab) // 8 + 2):
        hashes = _fingerprints(buf, op + 1, cl - op - 1, words)
        if len(set(hashes.tolist())) == len(vocab):
            break
    else:
        raise ValueError(f"{survey.source}: two keys share a 64-bit fingerprint; rename one")
    # The smallest table where every key has its own slot: token lookup is one array index.
    size = next(m for m in itertools.count(len(vocab))
                if len(set((hashes % np.uint64(m)).tolist())) == len(vocab))
    table = np.full(size, -1)
    table[(hashes % np.uint64(size)).astype(np.int64)] = np.arange(len(vocab))
    # Trailing -1 entries let an unknown id (-1) index the tables safely.
    q_of = np.full(len(vocab) + 1, -1)
    col_of = np.full((len(survey.questions) + 1, len(vocab) + 1), -1)
    for qi, q in enumerate(survey.questions):
        q_of[vocab.index(q.key)] = qi
        for o in q.options:
            col_of[qi, vocab.index(o.key)] = columns.index((q.key, o.key))
    points = np.zeros(len(columns), dtype=np.int64)
    rule_of = np.full(len(columns), -1)
    rules = []
    for r, rule in enumerate(survey.scoring):
        for okey, value in rule.points:
            points[columns.index((rule.question, okey))] += value
        for o in survey.question(rule.question).options:
            if not o.exclusive:
                rule_of[columns.index((rule.question, o.key))] = r
        rules.append((rule.any, rule.extra_at_least, rule.extra_points))
    return _Layout(columns, words, hashes, table, q_of, col_of, _block(columns, survey.segment),
                   _block(columns, survey.outcome), points, rule_of, rules)


def _tokens(lay: _Layout, rows: list[str]) -> tuple[np.ndarray, ...]:
    """(row, column) of every chosen option and (row, question) of every answered question."""
    text = "\0".join(rows)
    if "\\" in text:  # escaped text (ensure_ascii): re-write those rows plainly, the rare slow path
        rows = [json.dumps(json.loads(r), ensure_ascii=False) if "\\" in r else r for r in rows]
        text = "\0".join(rows)
    blob = text.encode()
    if len(blob) == len(text):  # ASCII: character offsets are byte offsets
        ends = np.cumsum(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)) + 1)
        starts = np.concatenate([[0], ends[:-1]])
    else:
        starts = np.concatenate([[0], np.flatnonzero(np.frombuffer(blob, np.uint8) == 0) + 1])
    buf, op, cl = _scan(blob, lay.words)
    h = _fingerprints(buf, op + 1, cl - op - 1, lay.words)
    vid = lay.table[(h % np.uint64(len(lay.table))).astype(np.int64)]
    vid = np.where(lay.hashes[vid] == h, vid, -1)
    # Each row's first token, then every token's row: one search per row, not per token.
    first = np.searchsorted(op, starts)
    row = np.repeat(np.arange(len(rows)), np.diff(first, append=len(op)))
    # A string followed by ':' is a question key; every other string belongs to the last key.
    is_key = buf[cl + 1] == ord(":")
    qid = np.where(is_key, lay.q_of[vid], -1)
    last = np.maximum.accumulate(np.where(is_key, np.arange(len(op)), -1)) if len(op) else op
    keys = np.flatnonzero(is_key & (qid >= 0))
    vals = np.flatnonzero(~is_key & (last >= 0))
    owner = last[vals]
    col = lay.col_of[qid[owner], vid[vals]]
    ok = (row[owner] == row[vals]) & (col >= 0)
    return row[vals][ok], col[ok], row[keys], qid[keys]


def _code(n: int, row: np.ndarray, col: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per row, the position of the option chosen in a single-choice block, or its width when none."""
    lo, hi = block
    code = np.full(n, hi - lo)
    inside = (col >= lo) & (col < hi)
    code[row[inside]] = col[inside] - lo
    return code


def _scores(lay: _Layout, n: int, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """The aftercare index of every row, as Survey.index_of computes it."""
    idx = np.bincount(row, weights=lay.points[col], minlength=n).astype(np.int64)
    scored = lay.rule_of[col] >= 0
    nr = len(lay.rules)
    real = np.bincount(row[scored] * nr + lay.rule_of[col[scored]], minlength=n * nr).reshape(n, nr)
    for r, (any_points, at_least, extra) in enumerate(lay.rules):
        if any_points:
            idx += any_points * (real[:, r] > 0)
        if extra:
            idx += extra * (real[:, r] >= at_least)
    return idx


def tally(survey: Survey, answers: Iterable[str] | pd.Series) -> Tally:
    """Count the responses (JSON text of validated answers), vectorised over all of them."""
    lay = _layout(survey)
    segs = [*survey.question(survey.segment).option_keys, UNKNOWN]
    outs = [*(survey.question(survey.outcome).option_keys if survey.outcome else ()), UNKNOWN]
    nq, nc, nv = len(survey.questions), len(lay.columns), INDEX_MAX + 1
    opts = np.zeros(len(segs) * nc, np.int64)
    ans = np.zeros(len(segs) * nq, np.int64)
    idx = np.zeros(len(segs) * len(outs) * nv, np.int64)
    rows = answers.tolist() if isinstance(answers, pd.Series) else list(answers)
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start:start + CHUNK_ROWS]
        row, col, arow, aq = _tokens(lay, chunk)
        s = _code(len(chunk), row, col, lay.seg)
        opts += np.bincount(s[row] * nc + col, minlength=len(opts))
        ans += np.bincount(s[arow] * nq + aq, minlength=len(ans))
        cell = (s * len(outs) + _code(len(chunk), row, col, lay.out)) * nv
        idx += np.bincount(cell + _scores(lay, len(chunk), row, col), minlength=len(idx))
    qkeys = [q.key for q in survey.questions]
    o, a, i = np.flatnonzero(opts), np.flatnonzero(ans), np.flatnonzero(idx)
    per_seg = len(outs) * nv
    pick = lambda labels, at: [labels[x] for x in at]  # noqa: E731
    return Tally(
        options=pd.DataFrame({"segment": pick(segs, o // nc), "question": [lay.columns[x][0] for x in o % nc],
                              "option": [lay.columns[x][1] for x in o % nc], "count": opts[o]}),
        answered=pd.DataFrame({"segment": pick(segs, a // nq), "question": pick(qkeys, a % nq),
                               "count": ans[a]}),
        index=pd.DataFrame({"segment": pick(segs, i // per_seg), "outcome": pick(outs, i % per_seg // nv),
                            "value": i % nv, "count": idx[i]}),
    )


# ---------------------------------------------------------------------------- figures

PCT_KEYS = tuple(str(p) for p in PERCENTILES)
CSV_COLUMNS = ("survey", "version", "segment", "question", "option", "n", "count", "percent",
               "ci_low", "ci_high", "suppressed")


def wilson(count: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of count in n, as proportions."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = count / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def percent(count: int, n: int) -> int:
    """count of n as a whole percent, halves rounded up."""
    return (200 * count + n) // (2 * n)


def ci_percent(count: int, n: int) -> list[int]:
    """The Wilson interval in whole percents, rounded outwards so that it still covers."""
    lo, hi = wilson(count, n)
    return [math.floor(lo * 100 + 1e-9), math.ceil(hi * 100 - 1e-9)]


def _share(key: str, count: int, n: int, hidden: bool) -> dict:
    """One published cell; a hidden one carries no number at all."""
    if hidden:
        return {"key": key, "count": None, "percent": None, "ci": None, "suppressed": True}
    return {"key": key, "count": count, "percent": percent(count, n), "ci": ci_percent(count, n),
            "suppressed": False}


def _caution(n: int, shares: list[dict]) -> bool:
    """Small sample, or some shown interval wider than CAUTION_WIDTH points."""
    return n < CAUTION_N or any(s["ci"] and s["ci"][1] - s["ci"][0] > CAUTION_WIDTH for s in shares)


def _percentiles(dist: np.ndarray, k: int) -> dict[str, float | None]:
    """Percentiles (linear interpolation) shown only when at least k values lie beyond them."""
    n = int(dist.sum())
    cum = np.cumsum(dist)
    out: dict[str, float | None] = {}
    for p in PERCENTILES:
        if min(p, 100 - p) * n < k * 100:
            out[str(p)] = None
            continue
        lo, frac = divmod((n - 1) * p, 100)
        v_lo = int(np.searchsorted(cum, lo, side="right"))
        v_hi = int(np.searchsorted(cum, min(lo + 1, n - 1), side="right"))
        out[str(p)] = round(v_lo + frac / 100 * (v_hi - v_lo), 1)
    return out


def _dist(frame: pd.DataFrame) -> np.ndarray:
    """Respondents per index value 0..INDEX_MAX."""
    return np.bincount(frame["value"].to_numpy(np.int64), weights=frame["count"].to_numpy(np.float64),
                       minlength=INDEX_MAX + 1).astype(np.int64)


# ---------------------------------------------------------------------------- suppression

# Vertex of cells with no known total on one side (multi-choice rows, histogram bins).
INF = "inf"


@dataclass
class _Cell:
    """A count in the graph of published totals: a unit of it flows from tail to head."""

    where: tuple[str | None, str]
    count: int
    total: int
    tail: Any
    head: Any
    hidden: bool = False


def _cells(qtype: str, over: dict[str, int], n: int, groups: list[tuple[str, int, dict]]) -> list[_Cell]:
    """Cells wired so that every total an attacker knows is a vertex where flow balances.

    Single-choice: options sum to n, a group's options to its n, an option's group counts to
    its overall count. Multi-choice: only the last holds. Bins (as single-choice) sum to N.
    """
    single, split = qtype == "single", bool(groups)
    cells = []
    for o, c in over.items():
        ends = {(True, True): (("o", o), "all"), (True, False): (INF, "all"),
                (False, True): (("o", o), INF), (False, False): (INF, INF)}[single, split]
        cells.append(_Cell((None, o), c, n, *ends))
    for g, ng, counts in groups:
        cells += [_Cell((g, o), c, ng, ("g", g) if single else INF, ("o", o)) for o, c in counts.items()]
    return cells


def _reach(arcs: dict, a: Any, b: Any) -> bool:
    """Whether b can be reached from a along arcs."""
    seen, todo = {a}, [a]
    while todo:
        v = todo.pop()
        if v == b:
            return True
        for w in arcs[v]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return False


def _pinned(e: _Cell, cells: list[_Cell]) -> bool:
    """Whether hidden cell e has one possible value, knowing every hidden cell is in 1..N-1.

    e can move by one exactly when a cycle of hidden cells through it can carry one unit
    while each stays within its bounds (the residual-graph test of network flows).
    """
    arcs = defaultdict(list)
    for f in cells:
        if f.hidden and f is not e:
            if f.count + 1 <= f.total - 1:
                arcs[f.tail].append(f.head)
            if f.count - 1 >= 1:
                arcs[f.head].append(f.tail)
    up = e.count + 1 <= e.total - 1 and _reach(arcs, e.head, e.tail)
    down = e.count - 1 >= 1 and _reach(arcs, e.tail, e.head)
    return not (up or down)


def _frees(c: _Cell, e: _Cell, cells: list[_Cell]) -> bool:
    """Whether hiding c would unpin e."""
    c.hidden = True
    free = not _pinned(e, cells)
    c.hidden = False
    return free


def _lp_pinned(cells: list[_Cell], exclusive: frozenset[str]) -> _Cell | None:
    """The first hidden cell fixed once an exclusive option's inequalities join the totals.

    "None of these" excludes the other options and everyone chose something, so in a row of
    n: none + o <= n for each option o, and none + (sum of options) >= n. Those are not flows,
    so a linear program bounds each hidden cell, as the audit in the tests does.
    """
    from scipy.optimize import linprog  # only here: the rest of Pulse does without scipy

    hidden = [c for c in cells if c.hidden]
    pos = {id(c): i for i, c in enumerate(hidden)}

    def line(terms: list[tuple[_Cell, int]], rhs: int) -> tuple[np.ndarray, int]:
        coeffs = np.zeros(len(hidden))
        for c, w in terms:
            if c.hidden:
                coeffs[pos[id(c)]] += w
            else:
                rhs -= w * c.count
        return coeffs, rhs

    rows, cols = defaultdict(list), defaultdict(list)
    for c in cells:
        rows[c.where[0]].append(c)
        cols[c.where[1]].append(c)
    eq = [line([(c, 1 if c.where[0] is not None else -1) for c in col], 0)
          for col in cols.values()] if len(rows) > 1 else []
    ub = []
    for row in rows.values():
        n = row[0].total
        nones = [(c, 1) for c in row if c.where[1] in exclusive]
        real = [c for c in row if c.where[1] not in exclusive]
        ub += [line(nones + [(o, 1)], n) for o in real]
        ub.append(line([(c, -1) for c, _ in nones] + [(o, -1) for o in real], -n))
    pack = lambda lines: (np.array([a for a, _ in lines]), [b for _, b in lines]) if lines else (None, None)
    (a_ub, b_ub), (a_eq, b_eq) = pack(ub), pack(eq)
    truth = np.array([c.count for c in hidden], dtype=float)
    free = np.zeros(len(hidden), dtype=bool)
    for i, c in enumerate(hidden):
        for sign in (1, -1):
            if not free[i]:
                res = linprog(np.eye(len(hidden))[i] * sign, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq,
                              bounds=[(1, h.total - 1) for h in hidden], method="highs")
                # Any solution that moves a cell by a whole unit proves that cell is free.
                free |= res.status == 0 and np.abs(res.x - truth) >= 1 - 1e-6
        if not free[i]:
            return c
    return None


def _protect(cells: list[_Cell], rules: Disclosure, exclusive: frozenset[str] = frozenset()) -> bool:
    """Primary then complementary suppression in place; False if a hidden cell stays pinned."""
    for c in cells:
        c.hidden = rules.hides(c.count, c.total)
    while True:
        e = next((c for c in cells if c.hidden and _pinned(c, cells)), None)
        if e is None and exclusive and any(c.hidden for c in cells):
            e = _lp_pinned(cells, exclusive)
        if e is None:
            return True
        # Never hide a 0 or an N, so that "a hidden cell is never 0 or N" stays true.
        free = [c for c in cells if not c.hidden and max(rules.k, 1) <= c.count <= c.total - rules.k]
        ends = {e.tail, e.head} - {INF}
        # Prefer cells in e's equations (for an exclusive option, its row too), then any.
        pool = [c for c in free if ends & {c.tail, c.head} or exclusive and c.where[0] == e.where[0]] or free
        if not pool:
            return False
        order = {id(c): i for i, c in enumerate(cells)}
        min(pool, key=lambda c: (not _frees(c, e, cells), c.count, order[id(c)])).hidden = True


def _protected(qtype: str, over: dict, n: int, groups: list, rules: Disclosure,
               exclusive: frozenset[str] = frozenset()) -> tuple[dict, list, bool]:
    """(hidden flag per (group, option), groups kept, withheld): the breakdown goes first if it must."""
    for parts in ([groups, []] if groups else [[]]):
        cells = _cells(qtype, over, n, parts)
        if _protect(cells, rules, exclusive):
            return {c.where: c.hidden for c in cells}, parts, False
    return {c.where: True for c in cells}, [], True


# ---------------------------------------------------------------------------- publishing


def segment_groups(survey: Survey, t: Tally, rules: Disclosure) -> list[dict]:
    """Segment groups [{"key", "n", "members"}] partitioning all respondents; [] if no valid split."""
    sizes = t.index.groupby("segment")["count"].sum().to_dict()
    keys = survey.question(survey.segment).option_keys
    least = rules.group_min
    shown = [o for o in keys if o != OTHER and sizes.get(o, 0) >= least]
    rest = lambda: t.n - sum(sizes[o] for o in shown)  # noqa: E731
    # A small merged group could be read off the total, so the smallest shown segment joins it
    # (the later option on a tie) until it is big enough or empty.
    while shown and 0 < rest() < least:
        shown.remove(min(reversed(shown), key=lambda o: sizes[o]))
    groups = [{"key": o, "n": int(sizes[o]), "members": [o]} for o in shown]
    if rest():
        groups.append({"key": OTHER, "n": int(rest()), "members": [o for o in keys if o not in shown]})
    return groups if len(groups) >= 2 else []


def _question(survey: Survey, q, sums: dict, groups: list[dict], rules: Disclosure) -> dict:
    """One question's published shares, overall and per segment group."""
    opt, ans, gopt, gans = sums["opt"], sums["ans"], sums["gopt"], sums["gans"]
    n = int(ans.get(q.key, 0))
    out = {"key": q.key, "type": q.type, "n": n, "caution": True, "enough": n >= rules.release_threshold,
           "withheld": False, "options": [], "segments": [], "notes": []}
    if not out["enough"]:
        out["notes"].append("Not enough responses yet.")
        return out
    over = {o: int(opt.get((q.key, o), 0)) for o in q.option_keys}
    parts = []
    if q.key != survey.segment and groups:
        parts = [(g["key"], int(gans.get((g["key"], q.key), 0)),
                  {o: int(gopt.get((g["key"], q.key, o), 0)) for o in q.option_keys}) for g in groups]
        parts = parts if all(ng >= rules.group_min for _, ng, _ in parts) else []
    exclusive = frozenset(o.key for o in q.options if o.exclusive) if q.type == "multi" else frozenset()
    hidden, kept, out["withheld"] = _protected(q.type, over, n, parts, rules, exclusive)
    out["options"] = [_share(o, c, n, hidden[None, o]) for o, c in over.items()]
    for g, ng, counts in kept:
        shares = [_share(o, c, ng, hidden[g, o]) for o, c in counts.items()]
        out["segments"].append({"key": g, "n": ng, "caution": _caution(ng, shares), "options": shares})
    out["caution"] = _caution(n, out["options"])
    if parts and not kept:
        out["notes"].append("No breakdown by segment: it would let a hidden count be worked out.")
    if out["withheld"]:
        out["notes"].append("Withheld: no pattern of hidden cells keeps small counts from being worked out.")
    elif any(hidden.values()):
        out["notes"].append(HIDDEN_NOTE.format(m=rules.k - 1))
    return out


def _index(t: Tally, rules: Disclosure) -> dict:
    """The index distribution: N, percentiles and a 10-point histogram, with the same rules."""
    dist = _dist(t.index)
    n = int(dist.sum())
    bins = {f"{lo}-{hi}": int(dist[lo:hi + 1].sum()) for lo, hi in BINS}
    hidden, _, withheld = _protected("single", bins, n, [], rules)
    histogram = [{"from": lo, "to": hi, **_share(key, c, n, hidden[None, key])}
                 for (lo, hi), (key, c) in zip(BINS, bins.items())]
    for b in histogram:
        del b["key"]
    out = {"n": n, "caution": n < CAUTION_N, "percentiles": _percentiles(dist, rules.k),
           "histogram": histogram, "withheld": withheld, "notes": []}
    if withheld:
        out["notes"].append("Withheld: no pattern of hidden bins keeps small counts from being worked out.")
    elif any(b["suppressed"] for b in histogram):
        out["notes"].append(HIDDEN_NOTE.format(m=rules.k - 1))
    if None in out["percentiles"].values():
        out["notes"].append(f"A percentile is shown only when at least {rules.k} clinics lie beyond it.")
    return out


def _outcome(survey: Survey, t: Tally, questions: list[dict], rules: Disclosure) -> dict | None:
    """Index percentiles per option of the outcome question, where that option's count is shown."""
    if not survey.outcome:
        return None
    shown = {s["key"]: s for q in questions if q["key"] == survey.outcome for s in q["options"]}
    options = []
    for o in survey.question(survey.outcome).option_keys:
        if o not in shown or shown[o]["suppressed"]:
            options.append({"key": o, "n": None, "percentiles": dict.fromkeys(PCT_KEYS)})
        else:
            dist = _dist(t.index[t.index["outcome"] == o])
            options.append({"key": o, "n": shown[o]["count"], "percentiles": _percentiles(dist, rules.k)})
    return {"question": survey.outcome, "options": options}


def publish(survey: Survey, t: Tally, rules: Disclosure, released: bool) -> dict:
    """The /api/v1/benchmarks body without "you": every figure the disclosure rules allow."""
    n = t.n
    body = {"survey": {"id": survey.id, "version": survey.version}, "responses": n, "released": released,
            "published": n >= rules.release_threshold, "needed": max(0, rules.release_threshold - n),
            "rules": {"release_threshold": rules.release_threshold, "k": rules.k,
                      "segment_min": rules.group_min},
            "notes": ["The figures describe the clinics that answered, not all clinics."],
            "segment": {"question": survey.segment, "groups": []}, "questions": [],
            "index": {"n": n, "caution": True, "percentiles": dict.fromkeys(PCT_KEYS), "histogram": [],
                      "withheld": False, "notes": []},
            "outcome": None}
    if not body["published"]:
        body["notes"].append(f"Nothing is published before {rules.release_threshold} responses: "
                             f"{body['needed']} more needed.")
        return body
    groups = segment_groups(survey, t, rules)
    body["segment"]["groups"] = groups
    if not groups:
        body["notes"].append(f"No breakdown by {survey.segment}: no split into groups of at least "
                             f"{rules.group_min} clinics each.")
    group_of = {m: g["key"] for g in groups for m in g["members"]} | {UNKNOWN: OTHER}
    opts, answered = t.options, t.answered
    sums = {"opt": opts.groupby(["question", "option"])["count"].sum().to_dict(),
            "ans": answered.groupby("question")["count"].sum().to_dict(),
            "gopt": opts.assign(g=opts["segment"].map(group_of)).groupby(["g", "question", "option"])["count"]
            .sum().to_dict(),
            "gans": answered.assign(g=answered["segment"].map(group_of)).groupby(["g", "question"])["count"]
            .sum().to_dict()}
    body["questions"] = [_question(survey, q, sums, groups, rules) for q in survey.questions]
    body["index"] = _index(t, rules)
    body["outcome"] = _outcome(survey, t, body["questions"], rules)
    return body


# ---------------------------------------------------------------------------- a participant


def _whole(counts: list[int]) -> list[int]:
    """Whole percents of counts adding up to exactly 100 (largest remainders round up)."""
    total = sum(counts)
    base = [100 * c // total for c in counts]
    order = sorted(range(len(counts)), key=lambda i: (-(100 * counts[i] % total), i))
    for i in order[: 100 - sum(base)]:
        base[i] += 1
    return base


def you(survey: Survey, answers: dict, t: Tally, counted: bool, rules: Disclosure) -> dict:
    """The participant's view: their index, their standing among the other clinics, practices they lack."""
    idx = survey.index_of(answers)
    out = {"answers": dict(answers), "index": idx, "lower": None, "same": None, "higher": None,
           "reason": None, "missing_practices": []}
    if t.n < rules.release_threshold:
        out["reason"] = "Nothing is published yet."
        return out
    # Lower / same / higher count the other clinics: the participant's own response leaves the tally.
    others = t - tally(survey, [json.dumps(answers)]) if counted else t
    dist = _dist(others.index)
    three = [int(dist[:idx].sum()), int(dist[idx]), int(dist[idx + 1:].sum())]
    if sum(three) == 0:
        out["reason"] = "There are no other clinics to compare with yet."
    elif any(1 <= c <= rules.k - 1 for c in three):
        # The three add up to 100%, so hiding one alone would hide nothing.
        out["reason"] = (f"Withheld: lower, same or higher would stand for fewer than {rules.k} other "
                         "clinics. Compare your index with the published percentiles instead.")
    else:
        out["lower"], out["same"], out["higher"] = _whole(three)
    chosen = t.options.groupby(["question", "option"])["count"].sum().to_dict()
    answered = t.answered.groupby("question")["count"].sum().to_dict()
    # "Most of the community": chosen by at least half of the respondents to that question.
    out["missing_practices"] = [
        {"question": q, "option": o} for q, o in survey.scored_options()
        if o not in as_tuple(answers.get(q)) and 0 < answered.get(q, 0) <= 2 * chosen.get((q, o), 0)]
    return out


def csv_rows(survey: Survey, published: dict) -> list[dict]:
    """One row per published cell, ordered by question, option and segment; hidden cells empty."""
    if not published.get("published"):
        return []
    head = {"survey": published["survey"]["id"], "version": published["survey"]["version"]}

    def row(segment: str, question: str, option: str, n: int, s: dict) -> dict:
        ci = s["ci"] or [None, None]
        return {**head, "segment": segment, "question": question, "option": option, "n": n,
                "count": s["count"], "percent": s["percent"], "ci_low": ci[0], "ci_high": ci[1],
                "suppressed": s["suppressed"]}

    rows = []
    by_key = {q["key"]: q for q in published["questions"]}
    for q in (by_key[x.key] for x in survey.questions if x.key in by_key):
        shares = {s["key"]: s for s in q["options"]}
        for o in (o for o in survey.question(q["key"]).option_keys if o in shares):
            rows.append(row("", q["key"], o, q["n"], shares[o]))
            for g in q["segments"]:
                share = next(s for s in g["options"] if s["key"] == o)
                rows.append(row(g["key"], q["key"], o, g["n"], share))
    idx = published["index"]
    rows += [row("", "index", f"{b['from']}-{b['to']}", idx["n"], b) for b in idx["histogram"]]
    return rows
