"""Disclosure control: which counts a published figure may show, and which segments.

Pure: imports neither Flask nor the database. Suppression models what a reader knows as a
flow network (every published total balances at a vertex) and asks, per hidden cell, whether
a cycle of hidden cells can move it; an exclusive option ("none of these") adds inequalities
that a linear program checks.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..questions import Survey
from .tallies import Tally

# Percentiles of the index offered for publication; shown_percentiles() decides which are shown.
PERCENTILES = (10, 25, 50, 75, 90)
# Key of the merged segment group.
OTHER = "other"
# Vertex of cells with no known total on one side (multi-choice rows, histogram bins).
INF = "inf"


@dataclass(frozen=True)
class Disclosure:
    """The disclosure rules: release threshold, cell-size threshold k, smallest segment group."""

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


def shown_percentiles(dist: np.ndarray, k: int) -> dict[str, float | None]:
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


# ---------------------------------------------------------------------------- suppression


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


def _pack(lines: list) -> tuple:
    """(coefficient matrix, right-hand sides) of linear constraints, or (None, None) for none."""
    return (np.array([a for a, _ in lines]), [b for _, b in lines]) if lines else (None, None)


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
    (a_ub, b_ub), (a_eq, b_eq) = _pack(ub), _pack(eq)
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


def suppress(qtype: str, over: dict, n: int, groups: list, rules: Disclosure,
             exclusive: frozenset[str] = frozenset()) -> tuple[dict, list, bool]:
    """(hidden flag per (group, option), groups kept, withheld): the breakdown goes first if it must."""
    for parts in ([groups, []] if groups else [[]]):
        cells = _cells(qtype, over, n, parts)
        if _protect(cells, rules, exclusive):
            return {c.where: c.hidden for c in cells}, parts, False
    return {c.where: True for c in cells}, [], True


# ---------------------------------------------------------------------------- segments


def segment_groups(survey: Survey, t: Tally, rules: Disclosure) -> list[dict]:
    """Segment groups [{"key", "n", "members"}] partitioning all respondents; [] if no valid split."""
    sizes = t.totals("index", lambda key: key[0])
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
