"""The count state of a set of responses (Tally), and tally(): answer JSON in, counts out.

Pure: imports neither Flask nor the database. A Tally holds its counts as plain dicts sorted
by key, so that adding a few responses to a snapshot's counts, or reading and writing them as
JSON, costs little more than the keys touched; pandas frames of them are built on demand.

tally() reads answers as json.dumps writes them (any separators, key order or ensure_ascii)
after validate_answers: it finds the quoted strings with numpy instead of parsing each row.
Each answer must have the shape its question's type stores (question_types.py: one option key,
or a list of them): one it cannot vouch for is parsed and judged by the type's counted(), and
one that cannot be counted is refused (domain_errors.Invalid), never dropped or miscounted.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections import Counter
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Callable, Hashable, Iterable

import numpy as np
import pandas as pd

from ..domain_errors import Invalid
from ..question_types import AnswerError
from ..questions import INDEX_MAX, Question, Survey
from .perturbation import combine_digests, set_digest

# The segment or outcome of a response lacking that answer.
UNKNOWN = ""
# Distinct answer texts tokenised at once: bounds memory to roughly 1 KB per text.
CHUNK_ROWS = 50_000

_KEYS = {
    "options": ("segment", "question", "option"),
    "answered": ("segment", "question"),
    "index": ("segment", "outcome", "value"),
}
# One table: count by key tuple, no zeros, in key order.
Counts = dict[tuple[Any, ...], int]


def _dtypes(keys: tuple[str, ...]) -> dict[str, Any]:
    """Column types of a count frame: text keys, whole-number index values and counts."""
    return {k: ("int64" if k == "value" else str) for k in keys} | {"count": "int64"}


def _normal(df: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """Counts summed per key, zero rows dropped, sorted by key: one frame per count state."""
    df = df.astype(_dtypes(keys))
    df = df.groupby(list(keys), as_index=False, sort=True)["count"].sum()
    return df[df["count"] != 0].reset_index(drop=True)


def _counts(df: pd.DataFrame, keys: tuple[str, ...]) -> Counts:
    """A frame from _normal as Counts."""
    return dict(zip(zip(*(df[k].tolist() for k in keys)), df["count"].tolist()))


def _frame(counts: Counts, keys: tuple[str, ...]) -> pd.DataFrame:
    """Counts as the frame _normal would make of them."""
    columns = list(zip(*counts)) if counts else [()] * len(keys)
    df = pd.DataFrame({**{k: list(c) for k, c in zip(keys, columns)}, "count": list(counts.values())})
    return df.astype(_dtypes(keys))


def _read(rows: list[Any], keys: tuple[str, ...]) -> Counts:
    """JSON rows [keys..., count] as Counts, normalised as _normal would."""
    # Rows that to_json wrote are already normal: check that in C-speed passes, not per row.
    if not rows:
        return {}
    columns = list(zip(*rows)) if isinstance(rows, list) and set(map(len, rows)) == {len(keys) + 1} else []
    types = [int if k == "value" else str for k in keys] + [int]
    if columns and all(set(map(type, c)) == {t} for c, t in zip(columns, types)) and 0 not in columns[-1]:
        rest = list(zip(*columns[:-1]))
        if all(map(operator.lt, rest, itertools.islice(rest, 1, None))):
            return dict(zip(rest, columns[-1]))
    return _counts(_normal(pd.DataFrame(rows, columns=[*keys, "count"]), keys), keys)


class Tally:
    """Counts of a set of responses: options and answers by segment, index by segment and outcome.

    `digest` identifies the set of responses counted (perturbation.set_digest of their ids):
    the published noise is drawn from it, so another set draws afresh.
    """

    def __init__(self, options: pd.DataFrame, answered: pd.DataFrame, index: pd.DataFrame, digest: int = 0):
        frames = dict(zip(_KEYS, (options, answered, index)))
        self._tables = {name: _counts(_normal(frames[name], keys), keys) for name, keys in _KEYS.items()}
        self._frames: dict[str, pd.DataFrame] = {}
        self.digest = digest

    @classmethod
    def _of(cls, tables: dict[str, Counts], digest: int = 0) -> Tally:
        """A Tally of counts that are already normal (summed, no zeros, in key order)."""
        t = cls.__new__(cls)
        t._tables, t._frames, t.digest = tables, {}, digest
        return t

    def _view(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            self._frames[name] = _frame(self._tables[name], _KEYS[name])
        return self._frames[name]

    @property
    def options(self) -> pd.DataFrame:
        """Chosen options: segment, question, option, count (sorted by key; do not modify)."""
        return self._view("options")

    @property
    def answered(self) -> pd.DataFrame:
        """Answered questions: segment, question, count (sorted by key; do not modify)."""
        return self._view("answered")

    @property
    def index(self) -> pd.DataFrame:
        """Index values: segment, outcome, value, count (sorted by key; do not modify)."""
        return self._view("index")

    @cached_property
    def n(self) -> int:
        """Number of responses counted (every response has exactly one index row)."""
        return int(sum(self._tables["index"].values()))

    def totals(self, name: str, key: Callable[[tuple[Any, ...]], Hashable | None]) -> dict[Any, int]:
        """One table's counts summed by key(row key), leaving out the rows it maps to None."""
        out: dict[Any, int] = {}
        for k, c in self._tables[name].items():
            g = key(k)
            if g is not None:
                out[g] = out.get(g, 0) + c
        return out

    def _combine(self, other: Tally, sign: int) -> Tally:
        parts = {}
        for name in _KEYS:
            mine, theirs = self._tables[name], other._tables[name]
            if sign == 1 and len(theirs) > len(mine):
                mine, theirs = theirs, mine
            # Only the other side's keys are touched, so a merge costs what the smaller tally holds.
            out, grown = dict(mine), False
            for k, c in theirs.items():
                was = out.get(k)
                if was is None:
                    out[k], grown = sign * c, True
                else:
                    out[k] = was + sign * c
            if out and min(out.values()) < 0:
                raise ValueError("cannot remove responses that this tally does not count")
            for k in [k for k in theirs if out[k] == 0]:
                del out[k]
            # New keys were appended: sorting a sorted run plus a short tail is nearly linear.
            parts[name] = dict(sorted(out.items())) if grown else out
        return Tally._of(parts, combine_digests(self.digest, other.digest, sign))

    def __add__(self, other: Tally) -> Tally:
        return self._combine(other, 1)

    def __sub__(self, other: Tally) -> Tally:
        return self._combine(other, -1)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tally) and self._tables == other._tables and self.digest == other.digest

    def __repr__(self) -> str:
        return f"Tally(n={self.n}, " + ", ".join(f"{k}={len(v)} keys" for k, v in self._tables.items()) + ")"

    def to_json(self) -> dict[str, Any]:
        """Plain lists of [keys..., count], sorted by key, and the digest as hex: exact and JSON-serialisable."""
        return {name: [[*k, c] for k, c in table.items()] for name, table in self._tables.items()} | {
            "ids": f"{self.digest:032x}"
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        """The Tally that to_json() described (a digest of None if it was written without one)."""
        t = cls._of({name: _read(data.get(name) or [], keys) for name, keys in _KEYS.items()})
        t.digest = int(data["ids"], 16) if "ids" in data else None  # type: ignore[assignment]  # publish() reads None as 0
        return t


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
    # Segment and outcome labels (UNKNOWN last), and per table the key of every count cell
    # with the cells in key order, so that a Tally comes out of the counts already sorted.
    segs: list[str]
    outs: list[str]
    cells: dict[str, tuple[list[tuple[Any, ...]], np.ndarray]]
    # The survey's questions, and per question whether its answer is a list of keys (else one key;
    # a trailing False for unknown keys); "id@version", naming the survey in a refusal.
    questions: tuple[Question, ...]
    several: np.ndarray
    name: str


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


def _sorted_cells(keys: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], np.ndarray]:
    """The keys, and the cell positions in key order."""
    return keys, np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


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
    size = next(m for m in itertools.count(len(vocab)) if len(set((hashes % np.uint64(m)).tolist())) == len(vocab))
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
        scored = survey.question(rule.question)
        assert scored is not None  # questions.py checks every scored question exists
        for o in scored.options:
            if not o.exclusive:
                rule_of[columns.index((rule.question, o.key))] = r
        rules.append((rule.any, rule.extra_at_least, rule.extra_points))
    segment, outcome = survey.question(survey.segment), survey.question(survey.outcome or "")
    assert segment is not None
    segs = [*segment.option_keys, UNKNOWN]
    outs = [*(outcome.option_keys if outcome is not None else ()), UNKNOWN]
    cells = {
        "options": _sorted_cells([(s, q, o) for s in segs for q, o in columns]),
        "answered": _sorted_cells([(s, q.key) for s in segs for q in survey.questions]),
        "index": _sorted_cells([(s, u, v) for s in segs for u in outs for v in range(INDEX_MAX + 1)]),
    }
    return _Layout(
        columns,
        words,
        hashes,
        table,
        q_of,
        col_of,
        _block(columns, survey.segment),
        _block(columns, survey.outcome),
        points,
        rule_of,
        rules,
        segs,
        outs,
        cells,
        survey.questions,
        np.array([q.kind.several for q in survey.questions] + [False]),
        f"{survey.id}@{survey.version}",
    )


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
    mine = row[owner] == row[vals]
    ok = mine & (col >= 0)
    krow, kq = row[keys], qid[keys]
    counted = row[vals][ok], col[ok], krow, kq
    del text, blob, h, vid, is_key, last, ok  # not needed below: the check adds less to the peak
    _vouch(lay, rows, buf, op, cl, keys, (krow, kq), vals[mine], col[mine], owner[mine])
    return counted


def _vouch(
    lay: _Layout,
    rows: list[str],
    buf: np.ndarray,
    op: np.ndarray,
    cl: np.ndarray,
    keys: np.ndarray,
    answered: tuple[np.ndarray, np.ndarray],
    vals: np.ndarray,
    col: np.ndarray,
    owner: np.ndarray,
) -> None:
    """Refuse any answer the count would drop or miscount (Invalid, naming the question).

    The count reads option keys wherever they stand; here every known question's value is held to
    its type's shape, as json.dumps writes it: one key ("key" then , or }) or a list of keys
    (["a","b"], in option order). An answer written otherwise (other whitespace, another order)
    is parsed and judged by its type's counted(); one that passes is counted as the tokens say.
    `keys` are the tokens of known questions, `answered` their (row, question); `vals` the
    tokens in their key's row, with their column and their key's token (`owner`).
    """
    if not len(keys):
        return
    krow, kq = answered
    # The first character of each answer: after the key's ':' and at most one space. A '"' there
    # opens the key's next token, its first value; so does '[' followed by '"'.
    start = cl[keys] + 2
    start += buf[start] == 32
    opening = buf[start]
    # Each value's key, as its place among `keys` (values of unknown questions are left out
    # here, as the count leaves them).
    marked = np.zeros(len(op), np.int32)
    marked[keys] = 1
    known = marked[owner] == 1
    if not known.all():
        vals, col, owner = vals[known], col[known], owner[known]
    pos = np.cumsum(marked)[owner] - 1
    m = np.bincount(pos, minlength=len(keys))
    # What follows each value: ',' or '}' after one key; ',' between the keys of a list (then at
    # most one space, and the next key later in option order) and ']' after its last.
    close = cl[vals]
    after = buf[close + 1]
    inner = pos[1:] == pos[:-1]
    apart = (after[:-1] == 44) & (op[vals[1:]] - close[:-1] <= 3) & (col[1:] > col[:-1])
    odd = np.bincount(np.concatenate([pos[col < 0], pos[:-1][inner & ~apart]]), minlength=len(keys)) > 0
    ends = after[np.maximum(np.cumsum(m) - 1, 0)] if len(vals) else np.zeros(len(keys), np.uint8)
    one = (opening == 34) & (m == 1) & ((ends == 44) | (ends == 125))
    listed = (opening == 91) & (buf[start + 1] == 34) & (m >= 1) & (ends == 93)
    plain = np.where(lay.several[kq], listed, one) & ~odd
    # A question answered twice in a response: JSON keeps one answer, the count would see both.
    pair = krow * len(lay.several) + kq
    twice = np.flatnonzero(np.bincount(pair)[pair] > 1)  # rows x questions: a small table
    if len(twice):
        key = lay.questions[kq[twice[0]]].key
        problem = "answered twice in one response"
        raise Invalid("stored_answer", {key: problem}, survey=lay.name, question=key, problem=problem)
    for at in np.flatnonzero(~plain).tolist():
        _judge(lay, rows[krow[at]], lay.questions[kq[at]])


def _judge(lay: _Layout, text: str, q: Question) -> None:
    """Refuse one stored answer that its question's type cannot count (Invalid, naming it)."""
    try:
        answers = json.loads(text)
        q.kind.counted(q, answers.get(q.key) if isinstance(answers, dict) else None)
    except (ValueError, AnswerError) as exc:
        problem = str(exc) if isinstance(exc, AnswerError) else "the stored answers are not JSON"
        raise Invalid("stored_answer", {q.key: problem}, survey=lay.name, question=q.key, problem=problem) from None


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


def _nonzero(flat: np.ndarray, keys: list[tuple[Any, ...]], order: np.ndarray) -> Counts:
    """The cells of flat counts that are not zero, by key, in key order."""
    at = order[flat[order] != 0]
    return dict(zip(map(keys.__getitem__, at.tolist()), flat[at].tolist()))


def _count_texts(lay: _Layout, texts: Counter[str], flats: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Add distinct answer texts, each weighted by how many responses have it, to the flat counts."""
    if not texts:
        return
    rows = list(texts)
    weight = np.fromiter(texts.values(), dtype=np.float64, count=len(rows))
    opts, ans, idx = flats
    nc, nq = len(lay.columns), len(ans) // len(lay.segs)
    row, col, arow, aq = _tokens(lay, rows)
    s = _code(len(rows), row, col, lay.seg)
    cell = (s * len(lay.outs) + _code(len(rows), row, col, lay.out)) * (INDEX_MAX + 1)
    # Weighted counts are whole numbers in float64: exact below 2**53 responses.
    for flat, cells, w in (
        (opts, s[row] * nc + col, weight[row]),
        (ans, s[arow] * nq + aq, weight[arow]),
        (idx, cell + _scores(lay, len(rows), row, col), weight),
    ):
        flat += np.bincount(cells, weights=w, minlength=len(flat)).astype(np.int64)


def tally_chunks(survey: Survey, chunks: Iterable[tuple[list[str], list[str]]]) -> Tally:
    """Count responses that arrive in chunks of (ids, answer JSON texts), as a full rebuild reads them.

    Each distinct text is tokenised once, weighted by its number of responses: eight closed
    questions leave few combinations in common use, so a large survey repeats its texts, and
    a hash table (Counter, in C) costs a fraction of reading every row's tokens. Texts are
    gathered across chunks and counted whenever CHUNK_ROWS distinct ones are waiting, which
    bounds memory as before; when every text is unique the Counter is the only added cost.
    """
    lay = _layout(survey)
    flats = (
        np.zeros(len(lay.segs) * len(lay.columns), np.int64),
        np.zeros(len(lay.segs) * len(survey.questions), np.int64),
        np.zeros(len(lay.segs) * len(lay.outs) * (INDEX_MAX + 1), np.int64),
    )
    texts: Counter[str] = Counter()
    digest = 0
    for ids, answers in chunks:
        texts.update(answers)
        digest = combine_digests(digest, set_digest(ids))
        if len(texts) >= CHUNK_ROWS:
            _count_texts(lay, texts, flats)
            texts.clear()
    _count_texts(lay, texts, flats)
    return Tally._of(
        {name: _nonzero(flat, *lay.cells[name]) for name, flat in zip(("options", "answered", "index"), flats)}, digest
    )


def tally(survey: Survey, answers: Iterable[str] | pd.Series, ids: list[str] | None = None) -> Tally:
    """Count the responses (JSON text of validated answers), vectorised over all of them.

    `ids` are the responses' ids, for the digest of the set (none: digest 0, for tests).
    """
    rows = answers.tolist() if isinstance(answers, pd.Series) else list(answers)
    ids = [] if ids is None else ids
    return tally_chunks(
        survey, ((ids[i : i + CHUNK_ROWS], rows[i : i + CHUNK_ROWS]) for i in range(0, max(len(rows), 1), CHUNK_ROWS))
    )
