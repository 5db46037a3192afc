"""Publishing: the benchmark body a snapshot stores, and a participant's view of it.

Pure: imports neither Flask nor the database. A snapshot stores a Tally (counts only, see
tallies.py); publish() derives every published figure from it under the rules of
disclosure.py, and you() adds one participant's standing per request.
"""
from __future__ import annotations

import json
import math

import numpy as np

from ..questions import INDEX_MAX, Survey, as_tuple
from .disclosure import OTHER, PERCENTILES, Disclosure, segment_groups, shown_percentiles, suppress
from .tallies import UNKNOWN, Tally, tally

# Two-sided 95% normal quantile for the Wilson interval.
Z95 = 1.959963984540054
# Histogram bins of 10 points; the last one is 90-100 so that 100 has a home.
BINS = tuple((lo, lo + 9) for lo in range(0, 90, 10)) + ((90, INDEX_MAX),)
# A figure from fewer respondents, or with a wider interval (in points), carries a caution.
CAUTION_N = 30
CAUTION_WIDTH = 30
HIDDEN_NOTE = ("Cells marked suppressed stand for 1 to {m} clinics, for all but 1 to {m} of them, "
               "or are hidden so that such a cell cannot be worked out from the totals.")


# ---------------------------------------------------------------------------- figures

PCT_KEYS = tuple(str(p) for p in PERCENTILES)


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


def _dist(by_value: dict[int, int]) -> np.ndarray:
    """Respondents per index value 0..INDEX_MAX, from {value: respondents}."""
    return np.bincount(np.fromiter(by_value, np.int64, len(by_value)),
                       weights=np.fromiter(by_value.values(), np.float64, len(by_value)),
                       minlength=INDEX_MAX + 1).astype(np.int64)


# ---------------------------------------------------------------------------- publishing


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
    hidden, kept, out["withheld"] = suppress(q.type, over, n, parts, rules, exclusive)
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
    dist = _dist(t.totals("index", lambda key: key[2]))
    n = int(dist.sum())
    bins = {f"{lo}-{hi}": int(dist[lo:hi + 1].sum()) for lo, hi in BINS}
    hidden, _, withheld = suppress("single", bins, n, [], rules)
    histogram = [{"from": lo, "to": hi, **_share(key, c, n, hidden[None, key])}
                 for (lo, hi), (key, c) in zip(BINS, bins.items())]
    for b in histogram:
        del b["key"]
    out = {"n": n, "caution": n < CAUTION_N, "percentiles": shown_percentiles(dist, rules.k),
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
    by_outcome = t.totals("index", lambda key: key[1:])
    options = []
    for o in survey.question(survey.outcome).option_keys:
        if o not in shown or shown[o]["suppressed"]:
            options.append({"key": o, "n": None, "percentiles": dict.fromkeys(PCT_KEYS)})
        else:
            dist = _dist({v: c for (u, v), c in by_outcome.items() if u == o})
            options.append({"key": o, "n": shown[o]["count"], "percentiles": shown_percentiles(dist, rules.k)})
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
    # A segment in no group (every one, without a breakdown) counts only towards the overall sums.
    grouped = lambda key: (group_of[key[0]], *key[1:]) if key[0] in group_of else None  # noqa: E731
    sums = {"opt": t.totals("options", lambda key: key[1:]), "ans": t.totals("answered", lambda key: key[1]),
            "gopt": t.totals("options", grouped), "gans": t.totals("answered", grouped)}
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
    dist = _dist(others.totals("index", lambda key: key[2]))
    three = [int(dist[:idx].sum()), int(dist[idx]), int(dist[idx + 1:].sum())]
    if sum(three) == 0:
        out["reason"] = "There are no other clinics to compare with yet."
    elif any(1 <= c <= rules.k - 1 for c in three):
        # The three add up to 100%, so hiding one alone would hide nothing.
        out["reason"] = (f"Withheld: lower, same or higher would stand for fewer than {rules.k} other "
                         "clinics. Compare your index with the published percentiles instead.")
    else:
        out["lower"], out["same"], out["higher"] = _whole(three)
    chosen = t.totals("options", lambda key: key[1:])
    answered = t.totals("answered", lambda key: key[1])
    # "Most of the community": chosen by at least half of the respondents to that question.
    out["missing_practices"] = [
        {"question": q, "option": o} for q, o in survey.scored_options()
        if o not in as_tuple(answers.get(q)) and 0 < answered.get(q, 0) <= 2 * chosen.get((q, o), 0)]
    return out
