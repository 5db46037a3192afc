"""Build Pulse's default perturbation table, pulse_k5.csv, with a small integer program.

    python -m survey_app.ptables.build            # rewrites survey_app/ptables/pulse_k5.csv

It needs scipy (in the `test` extra, not at run time: Pulse only reads the CSV).

The table has tails. A flat, bounded table (c-2..c+2 equally likely) loses to an attacker who
reads the same cell in a few snapshots: the readings intersect to the exact count. With tails
(a change of 4 is possible but rare, a change of 0 the likeliest), every reading leaves a whole
bell of counts possible, and each further reading narrows it only slowly
(tests/test_attacks.py and benchmarks/attacks.py measure it).

For every true count c (the table's `pcv`, 1..MAX_PCV) it chooses how many of the 256 cell
keys publish each value v:
- unbiased: the expected published count is the true count, exactly (whole cell-key counts);
- counts of SHAPE_FROM (9) or more take SHAPE: changes -4..+4, symmetric, falling as the change
  grows, variance VARIANCE_RANGE, no outcome more likely than MAX_SHARE;
- counts 1..K-1 are published as 0 or as K or more (never 1..K-1); counts K..SHAPE_FROM-1 can
  also fall to 0 (they cannot go below K otherwise); both take the shape as closely as
  unbiasedness allows (the integer program minimises the keys moved away from it), falling
  away from their centre on each side, and no count of K or more is published as itself with
  certainty;
0 stays 0 (the table has no row for it, as in the ONS format).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

CKEYS = 256
K = 5
# Cell keys per change -4..+4 for counts of SHAPE_FROM or more: a discretised bell of variance
# 2.98 (2 * (48 + 4*32 + 9*14 + 16*5) / 256), its likeliest outcome (no change) 58/256 = 23%.
SHAPE = {-4: 5, -3: 14, -2: 32, -1: 48, 0: 58, 1: 48, 2: 32, 3: 14, 4: 5}
MAX_CHANGE = max(SHAPE)
SHAPE_FROM = K + MAX_CHANGE
VARIANCE_RANGE = (2.0, 3.0)
MAX_SHARE = 0.35
# Rows 1..MAX_PCV; larger counts reuse the last 250 rows (the ONS lookup), all of them alike.
MAX_PCV = 260
OUT = Path(__file__).resolve().parent / "pulse_k5.csv"


def outcomes(c: int) -> list[int]:
    """The values count c may be published as."""
    if c >= SHAPE_FROM:
        return [c + d for d in SHAPE]
    # 0, and K up to the shape's top: a small count that went up by more than MAX_CHANGE would
    # stand out, so the top is c + MAX_CHANGE, except for counts that need room to stay unbiased.
    return [0] + list(range(K, max(c + MAX_CHANGE, K + MAX_CHANGE) + 1))


def target(c: int) -> dict[int, float]:
    """The shape moved to count c: changes that would land on 1..K-1 land on 0 or K instead,
    whichever is nearer (the integer program then restores unbiasedness)."""
    out: dict[int, float] = dict.fromkeys(outcomes(c), 0.0)
    for d, keys in SHAPE.items():
        v = c + d
        if v < 0:
            v = 0
        elif 0 < v < K:
            v = 0 if v < K / 2 else K
        out[v] = out.get(v, 0.0) + keys
    return out


def allocate(c: int) -> dict[int, int]:
    """How many of the 256 cell keys publish count c as each value."""
    if c >= SHAPE_FROM:
        return {c + d: keys for d, keys in SHAPE.items()}
    values = outcomes(c)
    want = target(c)
    n = len(values)
    moves = np.array(values) - c
    # Variables: n whole numbers of keys, then n deviations |keys - target| (minimised).
    objective = np.r_[np.zeros(n), np.ones(n)]
    rows, lower, upper = [], [], []

    def constrain(row, lo, hi):
        rows.append(row), lower.append(lo), upper.append(hi)

    constrain(np.r_[np.ones(n), np.zeros(n)], CKEYS, CKEYS)  # every key publishes something
    constrain(np.r_[moves, np.zeros(n)], 0, 0)  # unbiased
    for i, v in enumerate(values):  # deviation >= |keys - target|
        for sign in (1, -1):
            row = np.zeros(2 * n)
            row[i], row[n + i] = sign, -1.0
            constrain(row, -np.inf, sign * want[v])
    centre = max(c, K)
    positive = [i for i, v in enumerate(values) if v >= K]
    for a, b in zip(positive, positive[1:]):  # falling away from the centre
        row = np.zeros(2 * n)
        if values[b] <= centre:
            row[a], row[b] = -1.0, 1.0  # keys[a] <= keys[b] below it
        else:
            row[a], row[b] = 1.0, -1.0  # keys[a] >= keys[b] above it
        constrain(row, 0, np.inf)
    if c >= K:  # never published as itself for sure
        row = np.zeros(2 * n)
        row[values.index(c)] = 1.0
        constrain(row, 0, CKEYS * MAX_SHARE)
    result = milp(
        objective,
        constraints=LinearConstraint(np.array(rows), lower, upper),
        integrality=np.r_[np.ones(n), np.zeros(n)],
        bounds=Bounds(0, CKEYS),
    )
    if not result.success:
        raise RuntimeError(f"no table row for count {c}: {result.message}")
    counts = np.round(result.x[:n]).astype(int)
    return {v: int(k) for v, k in zip(values, counts) if k}


def check_shape() -> None:
    """SHAPE keeps the promise: 256 keys, symmetric (so unbiased), falling away from 0, its variance
    within VARIANCE_RANGE and no outcome above MAX_SHARE."""
    keys = [SHAPE[d] for d in range(-MAX_CHANGE, MAX_CHANGE + 1)]
    variance = sum(d * d * k for d, k in SHAPE.items()) / CKEYS
    assert sum(keys) == CKEYS and keys == keys[::-1], SHAPE
    assert all(SHAPE[d] > SHAPE[d + 1] for d in range(MAX_CHANGE)), SHAPE
    assert VARIANCE_RANGE[0] <= variance <= VARIANCE_RANGE[1] and max(keys) <= MAX_SHARE * CKEYS, SHAPE


def rows() -> list[tuple[int, int, int]]:
    """(pcv, ckey, pvalue) for the whole table; cell keys take the outcomes in order."""
    check_shape()
    out = []
    for c in range(1, MAX_PCV + 1):
        ckey = 0
        for value, keys in sorted(allocate(c).items()):
            for _ in range(keys):
                out.append((c, ckey, value - c))
                ckey += 1
        assert ckey == CKEYS, (c, ckey)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["pcv", "ckey", "pvalue"])
        writer.writerows(rows())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
