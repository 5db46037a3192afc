"""Disclosure control: the rules every published figure follows, and the noise it carries.

Pure: imports neither Flask nor the database. Every published count is a perturbed count
(perturbation.py, the ONS cell-key method) of one snapshot: no threshold rule alone holds
against someone who can add responses of their own (they pad a small cell, or difference two
snapshots), so the counts themselves carry noise, drawn afresh for every set of responses.
On top of that: nothing before the release threshold, segments shown only where the published
sizes of every group reach the minimum, percentiles only where enough clinics lie beyond them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from ..questions import Survey
from .perturbation import PTable, cell_keys, load_ptable

# Percentiles of the index offered for publication; shown_percentiles() decides which are shown.
PERCENTILES = (10, 25, 50, 75, 90)
# Key of the merged segment group.
OTHER = "other"


@cache
def default_ptable() -> PTable:
    """The perturbation table shipped with Pulse, read once."""
    return load_ptable()


@dataclass(frozen=True)
class Disclosure:
    """The disclosure rules: release threshold, small-count k, segment minimum, the ptable and its key.

    `key` is a secret (derived from SECRET_KEY): without it nobody can tell which noise a cell
    drew. Tests and benchmarks may leave it empty; a served app never does.
    """

    release_threshold: int = 10
    k: int = 5
    segment_min: int = 10
    ptable: PTable = field(default_factory=default_ptable)
    key: bytes = b""

    def describe(self) -> dict[str, Any]:
        """The API's "disclosure": the method and what the table does to counts."""
        return self.ptable.describe()


class Noise:
    """One snapshot's perturbed counts: a cell's published count follows from its name and true count.

    The cell keys hash the survey, the digest of the set of counted responses and the cell's
    name, so one set of responses publishes the same numbers wherever a cell appears; a cell
    asked for twice in one snapshot gets its first value (a name is one cell).
    """

    def __init__(self, rules: Disclosure, survey: Survey, digest: int):
        self.rules, self.survey, self.digest = rules, survey, digest
        self._published: dict[str, int] = {}

    def counts(self, names: list[str], true: list[int], caps: list[int] | int) -> list[int]:
        """The published counts of these cells: perturbed, never below 0 nor above their row's n."""
        todo = [i for i, name in enumerate(names) if name not in self._published]
        if todo:
            keys = cell_keys(self.rules.key, self.survey.id, self.survey.version, self.digest, [names[i] for i in todo])
            values = self.rules.ptable.perturb(np.array([true[i] for i in todo], dtype=np.int64), keys)
            cap = np.array([caps if isinstance(caps, int) else caps[i] for i in todo], dtype=np.int64)
            for i, value in zip(todo, np.clip(values, 0, cap).tolist()):
                self._published[names[i]] = int(value)
        return [self._published[name] for name in names]


def shown_percentiles(bins: Sequence[tuple[int, int]], counts: list[int], n: int, k: int) -> dict[str, float | None]:
    """Percentiles of a published histogram (linear within a bin), each shown only when at
    least k of n clinics lie beyond it (min(p, 100-p)% of n >= k): never the minimum or maximum."""
    total = sum(counts)
    cum = np.cumsum(counts)
    out: dict[str, float | None] = {}
    for p in PERCENTILES:
        if total <= 0 or min(p, 100 - p) * n < k * 100:
            out[str(p)] = None
            continue
        target = total * p / 100
        i = int(np.searchsorted(cum, target, side="left"))
        lo, hi = bins[i]
        before = cum[i] - counts[i]
        width = hi + 1 - lo
        value = lo + (target - before) / counts[i] * width if counts[i] else lo
        out[str(p)] = round(float(min(max(value, bins[0][0]), bins[-1][1])), 1)
    return out


def segment_groups(
    survey: Survey, sizes: dict[str, int], rules: Disclosure, merged_size: Callable[[list[str]], int]
) -> list[dict[str, Any]]:
    """Segment groups [{"key", "n", "members"}] from published sizes; [] if no valid split.

    `sizes` are the published counts of the segment question's options; `merged_size(members)`
    the published size of a merged group, one perturbed count of its true size (a cell of its
    own, never the sum of its members' published sizes: that sum would count each member's
    noise again, and the group's shares would be computed over clinics it does not hold).
    Segments below the minimum merge into OTHER (with the option of that name); while that
    group is above 0 and below the minimum, the smallest shown segment joins it (on a tie the
    one listed later); the groups shown must each reach the minimum.
    """
    segment = survey.question(survey.segment)
    assert segment is not None  # questions.py checks the segment question exists
    keys = segment.option_keys
    least = rules.segment_min
    shown = [o for o in keys if o != OTHER and sizes.get(o, 0) >= least]

    while True:
        rest = [o for o in keys if o not in shown]
        size = merged_size(rest) if rest else 0
        if not (shown and 0 < size < least):
            break
        shown.remove(min(reversed(shown), key=lambda o: sizes[o]))
    groups = [{"key": o, "n": int(sizes[o]), "members": [o]} for o in shown]
    if size:
        groups.append({"key": OTHER, "n": int(size), "members": rest})
    return groups if len(groups) >= 2 else []
