"""Cell-key perturbation, as the UK ONS does it for flexible tables: noise on every published count.

Pure: imports neither Flask nor the database. A perturbation table ("ptable", the ONS CSV
format `pcv,ckey,pvalue`) says, for a true count (its row, `pcv`) and a cell key 0-255, what
to add. Each published cell gets its key from a keyed hash of the survey, the set of responses
counted and the cell's name: the same responses always give the same numbers (on the page, in
the API, the CSV and the report, after a release), and a snapshot of another set draws afresh,
so differencing two snapshots meets two independent draws of noise.

Counts above the table's largest pcv reuse its last 250 rows, as the ONS package
`cell-key-perturbation` does (rows 501-750 of its 750-row tables); tests check the lookup
against that package.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

# Cell keys run 0..CKEYS-1, as in the ONS tables.
CKEYS = 256
# Counts above the table's largest pcv are looked up in its last CYCLE rows, as ONS does.
CYCLE = 250
DEFAULT_NAME = "pulse_k5.csv"
# Set digests live in 0..2**128-1: the sum of the counted responses' ids (128-bit UUIDs).
DIGEST_BITS = 128


class PTableError(ValueError):
    """A perturbation table that cannot be used; the message names the file and the line."""


@dataclass(frozen=True, eq=False)
class PTable:
    """A perturbation table: `values[pcv, ckey]` is the change for a true count `pcv` (row 0: none)."""

    values: np.ndarray
    source: str

    @property
    def max_pcv(self) -> int:
        return int(self.values.shape[0]) - 1

    def pcv(self, counts: np.ndarray) -> np.ndarray:
        """The table row of each true count: itself up to max_pcv, then the last CYCLE rows in turn
        (a count a whole number of CYCLEs above a row uses that row, as ONS's 501-750 rule does)."""
        counts = np.asarray(counts, dtype=np.int64)
        top = self.max_pcv
        return np.where(counts <= top, counts, (counts - top - 1) % CYCLE + (top - CYCLE + 1))

    def perturb(self, counts: np.ndarray, ckeys: np.ndarray) -> np.ndarray:
        """True counts plus the table's change for their cell keys (not capped: see publishing)."""
        counts = np.asarray(counts, dtype=np.int64)
        changes: np.ndarray = self.values[self.pcv(counts), np.asarray(ckeys, dtype=np.int64)]
        perturbed: np.ndarray = counts + changes
        return perturbed

    # What follows describes the table; each is worked out once (a table never changes).
    @cached_property
    def smallest_shown(self) -> int:
        """The smallest count above 0 the table publishes: small counts show as 0 or this or more."""
        outputs = np.arange(self.max_pcv + 1)[:, None] + self.values
        return int(outputs[outputs > 0].min())

    @cached_property
    def regular_from(self) -> int:
        """The count from which the table's promise is plain: twice the smallest count shown (10 for
        Pulse's table). Below it a count may also fall to 0, as small counts do."""
        return min(2 * self.smallest_shown, self.max_pcv)

    def change_probabilities(self) -> dict[int, float]:
        """How likely each change is for counts from regular_from up (averaged over the table's rows)."""
        return dict(self._change_shares)

    @cached_property
    def _change_shares(self) -> dict[int, float]:
        changes = self.values[self.regular_from :]
        values, keys = np.unique(changes, return_counts=True)
        return {int(v): float(k) / changes.size for v, k in zip(values, keys)}

    @cached_property
    def max_change(self) -> int:
        """The largest change the table makes to a count of regular_from or more."""
        return int(np.abs(self.values[self.regular_from :]).max())

    def describe(self) -> dict[str, Any]:
        """What the API's "disclosure" says about this table: its largest change, how likely each
        change is (for counts of `from` or more), and how small counts show."""
        return {
            "method": "cell-key perturbation",
            "max_change": self.max_change,
            "small_counts": f"0 or {self.smallest_shown}+",
            "from": self.regular_from,
            "changes": [
                {"change": change, "probability": round(p, 3)} for change, p in self.change_probabilities().items()
            ],
        }


def default_path() -> Path:
    """The table shipped with Pulse (built by survey_app/ptables/build.py)."""
    return Path(str(resources.files("survey_app").joinpath("ptables", DEFAULT_NAME)))


def load_ptable(path: str | Path | None = None) -> PTable:
    """Read and check a ptable CSV; PTableError naming the file and line when it cannot be used."""
    path = Path(path) if path else default_path()
    table = _read_complete(path)
    if table is not None:
        return table
    return _read_checked(path)


def _read_complete(path: Path) -> PTable | None:
    """The fast way in: a well-formed table (rows in pcv, ckey order, every key of every pcv),
    read with numpy at start-up in milliseconds; None for anything else, which _read_checked
    then reads line by line to say what is wrong and where."""
    try:
        with path.open(encoding="utf-8") as handle:
            header = [h.strip().strip('"').lower() for h in handle.readline().split(",")]
            if header[:3] != ["pcv", "ckey", "pvalue"] or len(header) != 3:
                return None
            rows = np.loadtxt(handle, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError):
        return None
    if rows.shape[1] != 3 or not len(rows) or len(rows) % CKEYS:
        return None
    top = len(rows) // CKEYS
    expected_pcv = np.repeat(np.arange(1, top + 1), CKEYS)
    expected_ckey = np.tile(np.arange(CKEYS), top)
    if top < CYCLE or not (rows[:, 0] == expected_pcv).all() or not (rows[:, 1] == expected_ckey).all():
        return None
    if (rows[:, 0] + rows[:, 2] < 0).any():
        return None
    values = np.zeros((top + 1, CKEYS), dtype=np.int64)
    values[1:] = rows[:, 2].reshape(top, CKEYS)
    return PTable(values, str(path))


def _read_checked(path: Path) -> PTable:
    """Read a table line by line, raising PTableError at the first line that cannot be used."""
    source = str(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise PTableError(f"{source}: cannot read the perturbation table ({exc.strerror})") from None
    rows: dict[tuple[int, int], int] = {}
    with handle:
        reader = csv.reader(handle)
        header = [h.strip().strip('"').lower() for h in next(reader, [])]
        if header[:3] != ["pcv", "ckey", "pvalue"]:
            raise PTableError(f"{source}, line 1: the header must be pcv,ckey,pvalue (the ONS format)")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                pcv, ckey, pvalue = (int(float(v)) for v in row[:3])
            except ValueError:
                raise PTableError(f"{source}, line {line}: pcv, ckey and pvalue must be whole numbers") from None
            if pcv < 1 or not 0 <= ckey < CKEYS:
                raise PTableError(f"{source}, line {line}: pcv must be 1 or more and ckey 0 to {CKEYS - 1}")
            if (pcv, ckey) in rows:
                raise PTableError(f"{source}, line {line}: pcv {pcv} and ckey {ckey} appear twice")
            if pcv + pvalue < 0:
                raise PTableError(f"{source}, line {line}: pvalue {pvalue} would make count {pcv} negative")
            rows[(pcv, ckey)] = pvalue
    top = max((pcv for pcv, _ in rows), default=0)
    if top < CYCLE:
        raise PTableError(f"{source}: the table must cover counts 1 to at least {CYCLE} (it stops at {top})")
    missing = next(((p, c) for p in range(1, top + 1) for c in range(CKEYS) if (p, c) not in rows), None)
    if missing:
        raise PTableError(
            f"{source}: no row for pcv {missing[0]}, ckey {missing[1]}: every pcv needs all {CKEYS} cell keys"
        )
    values = np.zeros((top + 1, CKEYS), dtype=np.int64)
    for (pcv, ckey), pvalue in rows.items():
        values[pcv, ckey] = pvalue
    return PTable(values, source)


def set_digest(ids: list[str] | np.ndarray) -> int:
    """The sum of response ids (UUIDs as 128-bit numbers) mod 2**128: one number per set of responses.

    It updates incrementally (add the new ids' digest) and changes with any change of the set.
    Ids are random and never published, and cell keys hash it under a secret, so no one can
    steer it; it is kept with the snapshot's counts.
    """
    if len(ids) == 0:
        return 0
    raw = bytes.fromhex("".join(ids).replace("-", ""))
    # Four big-endian 32-bit words per id, each column summed exactly in 64 bits (up to 2**32 ids).
    sums = np.frombuffer(raw, dtype=">u4").reshape(len(ids), 4).sum(axis=0, dtype=np.uint64)
    total = sum(int(s) << (32 * (3 - i)) for i, s in enumerate(sums))
    return total % (1 << DIGEST_BITS)


def combine_digests(a: int, b: int, sign: int = 1) -> int:
    """The digest of a union (sign 1) or difference (sign -1) of two disjoint sets."""
    return (a + sign * b) % (1 << DIGEST_BITS)


def cell_keys(key: bytes, survey_id: str, version: int, digest: int, names: list[str]) -> np.ndarray:
    """Each named cell's key 0-255: a keyed hash of the survey, the set's digest and the cell's name."""
    base = hmac.new(key, f"pulse/cell-key\0{survey_id}\0{version}\0{digest:032x}".encode(), hashlib.sha256)
    out = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        h = base.copy()
        h.update(b"\0" + name.encode())
        out[i] = h.digest()[0]
    return out
