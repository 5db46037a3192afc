"""A survey's share kit: a QR code of its link (SVG and PNG) and a short announcement to copy.

Pure: the link comes in as text (the view makes it absolute, on this site's own host). The QR
code is made by segno on the server, so no image or script comes from another host.
"""

from __future__ import annotations

import io

import segno

from .pipeline.figures import Published
from .questions import Survey


def qr(url: str) -> segno.QRCode:
    # Error correction M: survives a smudged print, still small for a link of ~60 characters.
    return segno.make(url, error="m", micro=False)


def qr_svg(url: str) -> bytes:
    buffer = io.BytesIO()
    qr(url).save(buffer, kind="svg", scale=8, border=4, title="QR code of " + url, xmldecl=True, svgns=True)
    return buffer.getvalue()


def qr_png(url: str) -> bytes:
    buffer = io.BytesIO()
    # 8 px per module: about 300 px square for a typical link, sharp enough to print.
    qr(url).save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()


def announcement(survey: Survey, url: str, answering: bool = True) -> str:
    """A few lines to paste into a newsletter, a forum or a message, saying what the link shows:
    an invitation to answer (the survey's form, while it is open), else its results, which the
    caller hands out only once they are public (released and published)."""
    if not answering:
        return "\n".join(
            [
                f"{survey.title}: the results are out.",
                "The anonymous survey of ketamine-therapy clinics has published its figures: shares with 95%"
                f" intervals, the {survey.index_name}, and how clinics like yours compare."
                " Every published figure is protected.",
                "",
                url,
            ]
        )
    n = len(survey.questions)
    lines = [
        f"{survey.title}: a short anonymous survey for ketamine-therapy clinics.",
        f"{n} question{'s' if n != 1 else ''}, a few minutes. Nothing that identifies your clinic is stored"
        " (no IP address, no exact time), and every published figure is protected.",
        "You get a private results key to see where your clinic stands in the benchmark.",
    ]
    if survey.invite_only:
        lines.append("Answering needs an invite code: ask us for one.")
    lines += ["", url]
    return "\n".join(lines)


def results_state(published: Published) -> str:
    """What the public may see of a survey's results: "public" (released and published),
    "early" (published, in early access for key holders) or "none" (nothing published)."""
    if not published.published:
        return "none"
    return "public" if published.released else "early"


def page_description(survey: Survey, page: str, *, is_open: bool, results: str) -> str:
    """What a link preview (Open Graph, Twitter card) and a search engine say of a public page of
    this survey: "landing", "survey" (its form) or "results" (its public results page), in the
    survey's own title, number of questions and index name, as its state is (`results`: see
    results_state). An invitation to answer only while it is open."""
    title = f"\u201c{survey.title}\u201d"
    figures = f"shares with 95% intervals, the {survey.index_name} and where your clinic stands"
    if page == "results":
        return f"Results of {title}, a survey of ketamine-therapy clinics: {figures}."
    if is_open:
        n = len(survey.questions)
        return (
            f"Answer {title}: {n} anonymous question{'s' if n != 1 else ''} for ketamine-therapy clinics. "
            "Nothing that identifies your clinic is stored."
        )
    if results == "public":
        return f"{title} is closed. Its results are out: {figures}."
    if results == "early":
        state = "Its results are in early access until the organisers release them."
    else:
        state = "Results are published once enough clinics have answered."
    return f"{title}, a survey of ketamine-therapy clinics, is closed. {state}"


def card(survey: Survey, page: str, url: str, *, is_open: bool, results: str) -> dict[str, str]:
    """The share tags' description and address (absolute, on this site's own host) of a public page
    that answers 200: base.html emits the tags only for a page whose view gives one."""
    return {"description": page_description(survey, page, is_open=is_open, results=results), "url": url}
