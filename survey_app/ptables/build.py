"""Build Pulse's default perturbation table, pulse_k5.csv, with a small integer program.

    python -m survey_app.ptables.build            # rewrites survey_app/ptables/pulse_k5.csv

It needs scipy (in the `test` extra, not at run time: Pulse only reads the CSV).

For every true count c (the table's `pcv`, 1..MAX_PCV) it chooses how many of the 256 cell
keys publish each value v, under these rules:
- unbiased: the expected published count is the true count, exactly (whole cell-key counts);
- counts of K or more move by at most MAX_CHANGE, and counts 1..K-1 are published as 0 or as
  K or more (never 1..K-1), so a count of exactly K can only stay K (it has nowhere else to go
  without bias);
- counts above K vary by at least MIN_VARIANCE;
and among the tables that obey them, it spreads each count's outcomes as evenly as it can
(it maximises the smallest share of any allowed outcome). Even spreading is what keeps two
neighbouring counts c and c+1 hard to tell apart: with outcomes c-2..c+2 equally likely, one
published value says "c or c+1" with odds no better than 3 to 2, which is what an attacker
who differences two snapshots is left with (tests/test_attacks.py measures it).
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
MAX_CHANGE = 2
MIN_VARIANCE = 1.0
# Rows 1..MAX_PCV; larger counts reuse the last 250 rows (the ONS lookup), all of them alike.
MAX_PCV = 260
OUT = Path(__file__).resolve().parent / "pulse_k5.csv"


def outcomes(c: int) -> list[int]:
    """The values count c may be published as."""
    if c < K:
        return [0] + list(range(K, K + MAX_CHANGE + 1))
    return [v for v in range(c - MAX_CHANGE, c + MAX_CHANGE + 1) if v == 0 or v >= K]


def allocate(c: int) -> dict[int, int]:
    """How many of the 256 cell keys publish count c as each value."""
    values = outcomes(c)
    n = len(values)
    moves = np.array(values) - c
    # Variables: one whole number per outcome, then m, the smallest of them (maximised).
    objective = np.zeros(n + 1)
    objective[-1] = -1.0
    rows, lower, upper = [], [], []
    rows.append(np.r_[np.ones(n), 0.0]), lower.append(CKEYS), upper.append(CKEYS)          # 256 keys
    rows.append(np.r_[moves, 0.0]), lower.append(0), upper.append(0)                        # unbiased
    if c > K:
        rows.append(np.r_[moves ** 2, 0.0]), lower.append(MIN_VARIANCE * CKEYS), upper.append(np.inf)
    for i in range(n):  # m <= each outcome's keys
        row = np.zeros(n + 1)
        row[i], row[-1] = 1.0, -1.0
        rows.append(row), lower.append(0), upper.append(np.inf)
    result = milp(objective, constraints=LinearConstraint(np.array(rows), lower, upper),
                  integrality=np.ones(n + 1), bounds=Bounds(0, CKEYS))
    if not result.success:  # only c == K, whose rules leave it one outcome: itself
        return {c: CKEYS}
    counts = np.round(result.x[:n]).astype(int)
    return {v: int(k) for v, k in zip(values, counts) if k}


def rows() -> list[tuple[int, int, int]]:
    """(pcv, ckey, pvalue) for the whole table; cell keys take the outcomes in order."""
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
