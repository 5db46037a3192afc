"""Issue 20 items 3 and 4: participation per ISO week, invite codes from /admin, the share kit,
Open Graph tags and the Atom feed of program events."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import xml.etree.ElementTree as ET

import feedparser
import pytest
import segno
from sqlalchemy import func, select, update

from survey_app import (
    admin_auth,
    keys,
    migrate,
    participation,
    program,
    program_queries,
    share,
    snapshots,
    state,
    storage,
)
from survey_app.community import voting as community
from survey_app.models import InviteCode, ProgramEvent, Response, Snapshot
from survey_app.questions import load_survey

from .helpers import ADMIN_PASSWORD, ROOT, admin_login, fill, form_tokens, make_app, submit_api

pytestmark = pytest.mark.both_databases

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def organiser(app, client):
    with app.app_context():
        admin_auth.create_admin("ada", ADMIN_PASSWORD)
    assert admin_login(client).status_code == 303
    return client


def post(client, path, page, **data):
    tokens = form_tokens(client.get(page).get_data(as_text=True))
    return client.post(path, data={**data, **tokens})


def set_weeks(app, weeks: list[str]) -> None:
    """Give the stored responses these ISO weeks (one each), as if they had arrived then."""
    with app.app_context(), storage.writer() as db:
        ids = sorted(db.scalars(select(Response.id)))
        for row_id, week in zip(ids, weeks, strict=True):
            db.execute(update(Response).where(Response.id == row_id).values(week=week))


# ------------------------------------------------------------------ the pure weekly counts


def test_weekly_fills_the_gaps_and_crosses_the_year():
    weeks = participation.weekly({"2026-W52": 2, "2027-W02": 1, "2026-W53": 0, "junk": 5})
    assert [(w.week, w.responses) for w in weeks] == [
        ("2026-W52", 2),
        ("2026-W53", 0),
        ("2027-W01", 0),
        ("2027-W02", 1),
    ]
    assert participation.weekly({}) == []
    assert [w.week for w in participation.weekly({"2026-W10": 1}, until="2026-W12")] == [
        "2026-W10",
        "2026-W11",
        "2026-W12",
    ]


def test_bars_scale_to_the_tallest_and_keep_the_latest_weeks():
    weeks = participation.weekly({f"2026-W{n:02d}": n for n in range(1, 41)})
    bars = participation.bars(weeks, width=600, height=160)
    assert len(bars) == participation.CHART_WEEKS and bars[-1].week == "2026-W40"
    assert bars[-1].height == 160 and bars[-1].y == 0
    assert bars[0].height == pytest.approx(160 * 15 / 40, abs=0.01)
    assert all(0 <= b.x and b.x + b.width <= 600 for b in bars)
    (lone,) = participation.bars(participation.weekly({"2026-W01": 3}), width=600, height=160)
    assert lone.height == 160 and lone.width <= 600 / participation.MIN_SLOTS


# ------------------------------------------------------------------ the participation panel


def test_participation_shows_responses_per_week_and_the_distances(app, client, organiser):
    for _ in range(4):
        assert submit_api(client).status_code == 201
    set_weeks(app, ["2026-W48", "2026-W48", "2026-W50", "2026-W51"])
    page = client.get("/admin/participation").get_data(as_text=True)
    rows = re.findall(r'<tr><th scope="row">(\d{4}-W\d\d)</th><td>(\d+)</td></tr>', page)
    # Every week from the first response to this one (the survey is open), newest first.
    assert rows[-4:] == [("2026-W51", "1"), ("2026-W50", "1"), ("2026-W49", "0"), ("2026-W48", "2")]
    assert page.count("<rect ") == min(len(rows), participation.CHART_WEEKS)
    threshold = app.config["PULSE_RELEASE_THRESHOLD"]
    assert f"{threshold - 4} more responses until the threshold of {threshold}" in page
    assert f"At {threshold} responses ({threshold - 4} more)" in page
    assert "<script" not in page.split("</header>", 1)[1].split("<footer", 1)[0]
    assert "not in invite mode" in page


def test_participation_after_a_snapshot_and_of_a_closed_survey(app, client, organiser):
    threshold = app.config["PULSE_RELEASE_THRESHOLD"]
    for _ in range(threshold):
        submit_api(client)
    with app.app_context():
        snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
        expected = snapshots.next_snapshot_at(app.config, threshold)
    page = client.get("/admin/participation").get_data(as_text=True)
    assert f"Reached ({threshold})" in page and f"The latest snapshot counts {threshold} responses" in page
    assert f"At {expected} responses ({expected - threshold} more)" in page
    with app.app_context():
        program.close_survey()
    page = client.get("/admin/participation").get_data(as_text=True)
    assert "None: the survey is closed, and its final snapshot counts every response it received" in page
    assert "survey closed." in page


def test_participation_of_a_survey_never_opened_says_so(app, client, organiser):
    with app.app_context():
        program.add(ROOT / "surveys" / "patient-comfort.yaml")
    page = client.get("/admin/participation?survey=patient-comfort@1").get_data(as_text=True)
    assert "survey not opened yet." in page and "survey closed" not in page
    assert "None yet: the survey has not been opened." in page and "final snapshot" not in page


def test_participation_of_a_survey_closed_below_the_threshold_says_nothing_is_published(app, client, organiser):
    threshold = app.config["PULSE_RELEASE_THRESHOLD"]
    for _ in range(3):
        assert submit_api(client).status_code == 201
    with app.app_context():
        program.close_survey()
    page = client.get("/admin/participation").get_data(as_text=True)
    assert "final snapshot" not in page and "more responses until" not in page
    assert f"None: the survey closed below the threshold of {threshold}: nothing is published." in page
    assert f"Not reached: 3 of {threshold} responses, and the survey is closed: nothing is published." in page


def test_unknown_survey_is_404_not_500(client, organiser):
    for path in ("/admin/participation", "/admin/share", "/admin/share/qr.svg", "/admin/share/qr.png"):
        response = client.get(path + "?survey=nope")
        assert response.status_code == 404 and "nope" in response.get_data(as_text=True)


def test_the_pages_need_an_organiser(client):
    for path in ("/admin/participation", "/admin/share", "/admin/share/qr.svg", "/admin/share/qr.png"):
        assert client.get(path).status_code in (302, 303)
    assert client.post("/admin/invites", data={"n": "3"}).status_code in (302, 303, 400)


# ------------------------------------------------------------------ invite codes


@pytest.fixture
def invite_app(db_url, tmp_path):
    path = tmp_path / "invite.yaml"
    path.write_text((ROOT / "questions.yaml").read_text().replace("invite_only: false", "invite_only: true"))
    app = make_app(db_url, PULSE_QUESTIONS=str(path), SURVEY=load_survey(path))
    with app.app_context():
        admin_auth.create_admin("ada", ADMIN_PASSWORD)
    yield app
    state.of(app).close()


def test_invites_made_in_admin_are_a_csv_shown_once_and_work(invite_app, caplog):
    client = invite_app.test_client()
    admin_login(client)
    caplog.set_level(logging.DEBUG)
    response = post(client, "/admin/invites", "/admin/participation", n="3", survey="pulse-aftercare")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["survey", "invite_code"] and len(rows) == 4
    codes = [code for _, code in rows[1:]]
    assert all(keys.normalize(c, keys.INVITE_BYTES) == c for c in codes)
    # Stored as keyed hashes only, and never logged.
    with invite_app.app_context():
        stored = set(storage.reader().scalars(select(InviteCode.code_hash)))
    assert stored == {keys.keyed_hash(invite_app.config["SECRET_KEY"], "invite", c) for c in codes}
    assert not any(c in caplog.text for c in codes)
    # One is used: the panel counts it.
    assert submit_api(client, invite_code=codes[0]).status_code == 201
    page = client.get("/admin/participation").get_data(as_text=True)
    assert re.search(r"<strong>1</strong> code used \(one per response\), 2 not used yet", page)


@pytest.mark.parametrize("n", ["0", "-3", "abc", "", "100001", "99999999999", "²", " 5x"])
def test_a_bad_number_of_invites_says_so_and_makes_none(invite_app, n):
    client = invite_app.test_client()
    admin_login(client)
    response = post(client, "/admin/invites", "/admin/participation", n=n)
    assert response.status_code == 422 and "How many invite codes?" in response.get_data(as_text=True)
    with invite_app.app_context():
        assert storage.reader().scalar(select(func.count()).select_from(InviteCode)) == 0


def test_unused_invite_codes_are_labelled_as_the_survey_ids_not_one_versions(invite_app, tmp_path):
    """A code is stored and checked under the survey's id (the CSV names no version), so the codes
    made for one version wait for every version of it: the panel says so rather than counting
    them as this version's."""
    client = invite_app.test_client()
    admin_login(client)
    response = post(client, "/admin/invites", "/admin/participation", n="2", survey="pulse-aftercare@1")
    codes = [code for _, code in list(csv.reader(io.StringIO(response.get_data(as_text=True))))[1:]]
    wave = tmp_path / "wave2.yaml"
    wave.write_text(re.sub(r"^version: 1$", "version: 2", invite_app.config["SURVEY_TEXT"], count=1, flags=re.M))
    with invite_app.app_context():
        program.add(wave)
    page = client.get("/admin/participation?survey=pulse-aftercare@2").get_data(as_text=True)
    said = re.search(r'<p id="invites-used">(.*?)</p>', page, re.S)[1]
    assert "<strong>0</strong> codes used" in said and "2 not used yet" in said
    assert "made for <code>pulse-aftercare</code>, not for one version" in said
    with invite_app.app_context():
        program.open_survey("pulse-aftercare@2")
    assert submit_api(client, invite_code=codes[0]).status_code == 201  # a code made on version 1's panel


def test_the_cli_makes_invites_through_the_same_code(db_url):
    from .helpers import run_pulse

    result = run_pulse(db_url, "invites", "2")
    codes = result.output.splitlines()[-2:]
    assert result.exit_code == 0 and all(keys.normalize(c, keys.INVITE_BYTES) == c for c in codes)
    assert run_pulse(db_url, "invites", "0").exit_code != 0


# ------------------------------------------------------------------ the share kit


def test_share_kit_has_the_link_the_qr_codes_and_an_announcement(app, client, organiser):
    page = client.get("/admin/share").get_data(as_text=True)
    url = "http://localhost/survey"
    assert f'value="{url}"' in page
    announcement = re.search(r'<textarea id="announcement"[^>]*>(.*?)</textarea>', page, re.S)[1]
    assert url in announcement and "anonymous" in announcement and "questions" in announcement
    assert re.search(r"/admin/share/qr.svg\?survey=pulse-aftercare(@|%40)1\"", page)

    svg = client.get("/admin/share/qr.svg?survey=pulse-aftercare@1")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    root = ET.fromstring(svg.data)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}title").text == f"QR code of {url}"
    assert svg.data == share.qr_svg(url)
    png = client.get("/admin/share/qr.png")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data.startswith(PNG_SIGNATURE)
    # Both encode the survey's URL: the same symbol segno makes for it, and not for another URL.
    expected = io.BytesIO()
    segno.make(url, error="m", micro=False).save(expected, kind="png", scale=8, border=4)
    assert png.data == expected.getvalue() and png.data != share.qr_png(url + "x")
    assert 'd="' in svg.get_data(as_text=True)
    matrix_path = re.search(r' d="([^"]+)"', svg.get_data(as_text=True))[1]
    other = io.BytesIO()
    segno.make(url, error="m", micro=False).save(other, kind="svg", scale=8, border=4)
    assert f'd="{matrix_path}"' in other.getvalue().decode()
    assert "attachment" in client.get("/admin/share/qr.png?download=1").headers["Content-Disposition"]
    assert "attachment" not in client.get("/admin/share/qr.png").headers.get("Content-Disposition", "")


def test_share_kit_of_a_survey_not_open_links_its_public_results(app, client, organiser):
    fill(app, client, release=True)
    with app.app_context():
        program.close_survey()
    page = client.get("/admin/share?survey=pulse-aftercare@1").get_data(as_text=True)
    assert 'value="http://localhost/results/pulse-aftercare/1"' in page
    svg = client.get("/admin/share/qr.svg?survey=pulse-aftercare@1").data
    assert svg == share.qr_svg("http://localhost/results/pulse-aftercare/1")
    announcement = re.search(r'<textarea id="announcement"[^>]*>(.*?)</textarea>', page, re.S)[1]
    assert "results" in announcement and "http://localhost/results/pulse-aftercare/1" in announcement
    assert "questions" not in announcement and "answer" not in announcement.lower()
    assert client.get("/results/pulse-aftercare/1").status_code == 200  # the link works for anyone


def nothing_to_share(client, ref: str, why: str) -> None:
    """The kit says why, and hands out no link, QR code or announcement; the QR codes are a 409."""
    response = client.get(f"/admin/share?survey={ref}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and why in page, page
    assert 'id="share-url"' not in page and "qr.svg" not in page and 'id="announcement"' not in page
    assert "/results/" not in main_of(page) and '/survey"' not in main_of(page)
    for kind in ("svg", "png"):
        qr = client.get(f"/admin/share/qr.{kind}?survey={ref}")
        assert qr.status_code == 409 and qr.mimetype == "text/html" and why in qr.get_data(as_text=True)


def test_share_kit_of_a_survey_never_opened_says_to_open_it(app, client, organiser):
    with app.app_context():
        program.add(ROOT / "surveys" / "patient-comfort.yaml")
    assert client.get("/results/patient-comfort/1").status_code == 404  # what the old kit linked
    nothing_to_share(client, "patient-comfort@1", "has not been opened yet")
    assert "pulse survey open patient-comfort@1" in client.get("/admin/share?survey=patient-comfort@1").get_data(
        as_text=True
    )


def test_share_kit_of_a_closed_survey_in_early_access_says_to_release_it(app, client, organiser):
    fill(app, client)
    with app.app_context():
        program.close_survey()
    assert client.get("/results/pulse-aftercare/1").status_code == 403  # what the old kit linked
    nothing_to_share(client, "pulse-aftercare@1", "its results are in early access")
    assert "pulse release --survey pulse-aftercare@1" in client.get("/admin/share").get_data(as_text=True)


def test_share_kit_of_a_survey_closed_below_the_threshold_says_nothing_is_published(app, client, organiser):
    threshold = app.config["PULSE_RELEASE_THRESHOLD"]
    for _ in range(3):
        assert submit_api(client).status_code == 201
    with app.app_context():
        program.close_survey()
        program.set_released(app.config["SURVEY"])  # released, yet nothing is published
    nothing_to_share(client, "pulse-aftercare@1", f"3 of the {threshold} responses")
    assert "nothing of it is published" in client.get("/admin/share").get_data(as_text=True)


# ------------------------------------------------------------------ Open Graph and Twitter cards


def share_tags(html: str) -> dict[str, str]:
    """The page's Open Graph and Twitter card tags, and its meta description (as "description")."""
    head = html.split("</head>", 1)[0]
    return dict(re.findall(r'<meta (?:property|name)="((?:og|twitter):[\w:]+|description)" content="([^"]*)"', head))


@pytest.mark.parametrize("path", ["/", "/survey", "/results", "/results/pulse-aftercare/1"])
def test_link_previews_use_an_image_shipped_with_pulse(app, client, path):
    fill(app, client, release=True)  # results pages carry the tags once their results are public
    tags = share_tags(client.get(path).get_data(as_text=True))
    assert tags["og:title"] and tags["og:description"] and tags["twitter:card"] == "summary_large_image"
    # /results is the same page as the survey's own (rendered once for both): its own address.
    own = {"/results": "/results/pulse-aftercare/1"}.get(path, path)
    assert tags["og:url"] == "http://localhost" + own
    image = tags["og:image"]
    assert tags["twitter:image"] == image and re.fullmatch(r"http://localhost/assets/\w+/og-card\.png", image)
    # Nothing from another host, no tracking parameters.
    assert all(not v.startswith("http") or v.startswith("http://localhost/") for v in tags.values())
    served = client.get(image.removeprefix("http://localhost"))
    assert served.status_code == 200 and served.mimetype == "image/png"
    width, height = (int.from_bytes(served.data[16:20]), int.from_bytes(served.data[20:24]))
    assert served.data.startswith(PNG_SIGNATURE) and (width, height) == (1200, 630)


def test_the_results_page_keeps_its_own_address_whichever_url_rendered_it_first(app, client):
    fill(app, client, release=True)
    first = share_tags(client.get("/results").get_data(as_text=True))
    second = share_tags(client.get("/results/pulse-aftercare/1").get_data(as_text=True))
    assert first["og:url"] == second["og:url"] == "http://localhost/results/pulse-aftercare/1"


def comfort_answers() -> dict:
    survey = load_survey(ROOT / "surveys" / "patient-comfort.yaml")
    firsts = {q.key: next(o.key for o in q.options if not o.exclusive) for q in survey.questions}
    return {q.key: [firsts[q.key]] if q.kind.several else firsts[q.key] for q in survey.questions}


def test_share_descriptions_are_the_shown_surveys_and_follow_its_state(app, client, organiser):
    with app.app_context():
        program.add(ROOT / "surveys" / "patient-comfort.yaml")
        program.open_survey("patient-comfort@1")
    for path in ("/", "/survey"):
        tags = share_tags(client.get(path).get_data(as_text=True))
        told = [tags["og:description"], tags["twitter:description"], tags["description"]]
        assert len(set(told)) == 1, path
        assert "The Pulse of Patient Comfort" in told[0] and "7 anonymous questions" in told[0], told[0]
        assert "aftercare" not in told[0].lower() and "8" not in told[0]

    threshold = app.config["PULSE_RELEASE_THRESHOLD"]
    for _ in range(threshold):
        assert submit_api(client, comfort_answers()).status_code == 201
    with app.app_context():
        program.close_survey()
    for path in ("/", "/survey"):
        told = share_tags(client.get(path).get_data(as_text=True))["og:description"]
        assert "closed" in told and "early access" in told and "questions" not in told, (path, told)

    with app.app_context():
        program.set_released(program.find("patient-comfort@1"))
    for path in ("/", "/survey", "/results", "/results/patient-comfort/1"):
        tags = share_tags(client.get(path).get_data(as_text=True))
        assert tags["og:description"] == tags["twitter:description"] == tags["description"]
        told = tags["og:description"]
        assert "The Pulse of Patient Comfort" in told and "comfort index" in told, (path, told)
        assert "aftercare" not in told.lower()


def test_pages_that_name_no_survey_say_nothing_of_aftercare(app, client):
    with app.app_context():
        program.add(ROOT / "surveys" / "patient-comfort.yaml")
        program.open_survey("patient-comfort@1")
    for path in ("/privacy", "/topics", "/surveys", "/results/key", "/guide"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "aftercare" not in share_tags(response.get_data(as_text=True))["description"].lower(), path


def test_a_kept_results_page_never_names_another_requests_host(app, client):
    # The public results page is rendered once per snapshot and kept: a request with a forged
    # Host header must not leave its host in the og:url and og:image everyone else is served.
    fill(app, client, release=True)
    forged = share_tags(client.get("/results", headers={"Host": "evil.example"}).get_data(as_text=True))
    assert forged["og:url"].startswith("http://evil.example/")
    for _ in range(2):  # the first renders for this host, the second is the kept copy
        tags = share_tags(client.get("/results").get_data(as_text=True))
        assert tags["og:url"] == "http://localhost/results/pulse-aftercare/1"
        assert tags["og:image"].startswith("http://localhost/")


def test_share_tags_only_on_the_public_pages_that_answer_200(app, client, organiser):
    with app.app_context():
        program.add(ROOT / "surveys" / "patient-comfort.yaml")
    answered = client.post("/survey", data={})  # refused: not the page to preview
    assert answered.status_code >= 400
    pages = {
        "/results/nosuch/1": client.get("/results/nosuch/1"),
        "/results/patient-comfort/1 (never opened)": client.get("/results/patient-comfort/1"),
        "/results (open, nothing public)": client.get("/results"),
        "/survey (refused answer)": answered,
    }
    fill(app, client)
    with app.app_context():
        program.close_survey()
    pages["/results (early access gate)"] = client.get("/results")
    for name, response in pages.items():
        tags = share_tags(response.get_data(as_text=True))
        assert not any(k.startswith(("og:", "twitter:")) for k in tags), name
    assert {r.status_code for r in pages.values()} >= {404, 403, 400}
    for path in ("/", "/survey"):
        assert "og:title" in share_tags(client.get(path).get_data(as_text=True)), path


def test_share_description_of_each_state_is_the_surveys_own():
    comfort = load_survey(ROOT / "surveys" / "patient-comfort.yaml")
    invite = share.page_description(comfort, "survey", is_open=True, results="none")
    assert "The Pulse of Patient Comfort" in invite and "7 anonymous questions" in invite
    out = share.page_description(comfort, "results", is_open=False, results="public")
    assert "comfort index" in out and "95% intervals" in out
    for results, said in (("none", "once enough clinics have answered"), ("early", "early access"), ("public", "out")):
        closed = share.page_description(comfort, "landing", is_open=False, results=results)
        assert "closed" in closed and said in closed and "questions" not in closed, closed


@pytest.mark.parametrize("path", ["/", "/privacy", "/topics", "/surveys", "/admin/login", "/results/key"])
def test_every_page_links_the_feed(client, path):
    head = client.get(path).get_data(as_text=True).split("</head>", 1)[0]
    assert (
        '<link rel="alternate" type="application/atom+xml" title="Pulse: the survey program" href="/feed.atom">' in head
    )


# ------------------------------------------------------------------ the Atom feed


def parsed(client):
    response = client.get("/feed.atom")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    feed = feedparser.parse(response.data)
    assert not feed.bozo, feed.get("bozo_exception")
    return feed, response.data


def test_the_feed_tells_the_program_with_stable_ids_and_no_counts(app, client, organiser):
    feed, _ = parsed(client)
    assert feed.version == "atom10" and feed.feed.title == "Pulse: the survey program"
    assert [e.title for e in feed.entries] == ["Survey open: The Pulse of Clinical Aftercare (version 1)"]

    threshold = app.config["PULSE_RELEASE_THRESHOLD"]
    keys_ = [submit_api(client).get_json()["results_key"] for _ in range(threshold)]
    with app.app_context():
        snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
    assert post(client, "/admin/release", "/admin", survey="pulse-aftercare@1").status_code == 303
    a = client.post("/api/v1/topics", json={"title": "Comfort"}, headers={"X-Results-Key": keys_[0]}).get_json()["id"]
    b = client.post("/api/v1/topics", json={"title": "Music"}, headers={"X-Results-Key": keys_[0]}).get_json()["id"]
    with app.app_context():
        community.moderate(a, "approve")
        community.moderate(b, "approve")
    assert post(client, "/admin/round", "/admin/topics", action="open").status_code == 303
    for key in keys_[:2]:
        assert client.put("/api/v1/ballot", json={"approve": [a]}, headers={"X-Results-Key": key}).status_code == 200
    assert post(client, "/admin/round", "/admin/topics", action="close").status_code == 303

    feed, body = parsed(client)
    titles = [e.title for e in feed.entries]
    assert titles == [
        "Topic chosen in round 1: Comfort",
        "Voting round 1 is open",
        "Results released: The Pulse of Clinical Aftercare (version 1)",
        "Survey open: The Pulse of Clinical Aftercare (version 1)",
    ]
    assert [e.tags[0].term for e in feed.entries] == [
        "topic_chosen",
        "round_opened",
        "results_released",
        "survey_opened",
    ]
    assert feed.entries[2].link == feed.entries[3].link == "http://localhost/results/pulse-aftercare/1"
    assert feed.entries[0].link == feed.entries[1].link == "http://localhost/topics"
    assert all(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", e.id) for e in feed.entries)
    assert len({e.id for e in feed.entries}) == 4
    assert all(e.updated_parsed and e.published_parsed for e in feed.entries)
    assert feed.feed.updated == feed.entries[0].updated
    with app.app_context():
        days = {ev.uid: ev.day for ev in storage.reader().scalars(select(ProgramEvent))}
    assert {e.id.removeprefix("urn:uuid:"): e.updated[:10] for e in feed.entries} == {
        uid: day.isoformat() for uid, day in days.items()
    }

    # No count that changes between snapshots: more responses and a new snapshot leave it as it was.
    assert str(threshold) not in re.sub(r"\d{4}-\d\d-\d\dT[\d:]+Z|urn:uuid:[\w-]+", "", body.decode())
    for _ in range(threshold):
        submit_api(client)
    with app.app_context():
        snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
    assert parsed(client)[1] == body

    # Opening a survey again (it is open) or releasing twice adds nothing.
    with app.app_context():
        program.open_survey("pulse-aftercare@1")
        program.set_released(app.config["SURVEY"])
    assert parsed(client)[1] == body


def test_a_tie_chosen_by_the_organisers_is_an_entry(app, client, organiser):
    key = submit_api(client).get_json()["results_key"]
    a = client.post("/api/v1/topics", json={"title": "Alpha"}, headers={"X-Results-Key": key}).get_json()["id"]
    b = client.post("/api/v1/topics", json={"title": "Beta"}, headers={"X-Results-Key": key}).get_json()["id"]
    with app.app_context():
        community.moderate(a, "approve")
        community.moderate(b, "approve")
        community.open_round()
        community.close_round()  # nobody voted: the organisers choose
    assert "Topic chosen" not in parsed(client)[1].decode()
    with app.app_context():
        community.choose(b)
    feed, _ = parsed(client)
    assert feed.entries[0].title == "Topic chosen in round 1: Beta"


def test_feed_escapes_titles(app, client, tmp_path):
    path = tmp_path / "odd.yaml"
    text = (ROOT / "questions.yaml").read_text()
    text = re.sub(r"^title: .*$", 'title: "Ünïcode & <angle> brackets"', text, count=1, flags=re.M)
    text = re.sub(r"^version: \d+$", "version: 7", text, count=1, flags=re.M)
    path.write_text(text)
    with app.app_context():
        program.add(path)
        program.open_survey("pulse-aftercare@7")
    feed, _ = parsed(client)
    assert feed.entries[0].title == "Survey open: Ünïcode & <angle> brackets (version 7)"


def released_entries(client) -> list:
    return [e for e in parsed(client)[0].entries if e.tags[0].term == "results_released"]


def test_a_release_before_the_threshold_is_told_when_the_first_snapshot_makes_results_public(app, client, organiser):
    """Releasing before the threshold publishes nothing, so the feed says nothing yet; the
    snapshot that makes the results public tells it, once, dated by its ISO week only (it
    follows a response: a day could be matched to a clinic's visit)."""
    threshold = app.config["PULSE_RELEASE_THRESHOLD"]
    for _ in range(threshold - 1):
        assert submit_api(client).status_code == 201
    assert post(client, "/admin/release", "/admin", survey="pulse-aftercare@1").status_code == 303
    assert released_entries(client) == []

    assert submit_api(client).status_code == 201  # the threshold: the first snapshot, public at once
    with app.app_context():
        assert snapshots.published_n(app.config["SURVEY"]) == threshold
    (entry,) = released_entries(client)
    assert entry.title == "Results released: The Pulse of Clinical Aftercare (version 1)"
    assert entry.link == "http://localhost/results/pulse-aftercare/1"
    day = dt.date.fromisoformat(entry.updated[:10])
    assert day.isoweekday() == 1 and participation.iso_week(day) == storage.iso_week()

    # Later snapshots, a full recount and releasing again add nothing.
    for _ in range(threshold):
        assert submit_api(client).status_code == 201
    with app.app_context():
        assert snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
        program.set_released(app.config["SURVEY"])
    assert [e.id for e in released_entries(client)] == [entry.id]


def test_a_release_of_published_results_is_dated_by_the_organisers_day(app, client, organiser):
    threshold = app.config["PULSE_RELEASE_THRESHOLD"]
    for _ in range(threshold):
        assert submit_api(client).status_code == 201
    assert released_entries(client) == []  # in early access: not public yet
    assert post(client, "/admin/release", "/admin", survey="pulse-aftercare@1").status_code == 303
    (entry,) = released_entries(client)
    assert entry.updated[:10] == dt.datetime.now(dt.timezone.utc).date().isoformat()


def test_results_released_is_recorded_once_even_when_another_worker_recorded_it_unseen(app, client, monkeypatch):
    """Two workers storing a public snapshot at once may each find no entry yet (PostgreSQL's
    full recount reads one snapshot of the data); the database keeps one, and the snapshot of
    the worker that came second is stored all the same."""
    fill(app, client, release=True)
    monkeypatch.setattr(program_queries, "results_release_recorded", lambda db, survey_id, version: False)
    with app.app_context():
        snapshots.republish(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules())
        before = storage.reader().scalar(select(func.max(Snapshot.id)))
    with app.app_context():
        assert snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
    with app.app_context():
        assert storage.reader().scalar(select(func.max(Snapshot.id))) > before
    assert len(released_entries(client)) == 1


def test_the_migration_keeps_one_release_per_survey_and_drops_those_with_nothing_published(db_url):
    """Before 0010 a release before the threshold was recorded at once (nothing was public), and
    two releases at once could both be recorded."""
    migrate.downgrade(db_url, "0009")
    engine = storage.make_engine(db_url)
    with engine.begin() as conn:
        for uid, survey_id in (("a" * 36, "kept"), ("b" * 36, "kept"), ("c" * 36, "nothing-published")):
            conn.execute(
                ProgramEvent.__table__.insert().values(
                    uid=uid, kind="results_released", day=dt.date(2026, 12, 1), survey_id=survey_id, survey_version=1
                )
            )
        conn.execute(
            Snapshot.__table__.insert().values(
                survey_id="kept", survey_version=1, responses=10, tally="{}", published="{}", week="2026-W49", shape=1
            )
        )
    migrate.upgrade(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(ProgramEvent.uid, ProgramEvent.survey_id)).all()
    engine.dispose()
    assert rows == [("a" * 36, "kept")]


def main_of(html: str) -> str:
    """The page's own content: the site's navigation links /survey on every page."""
    return html.split('<main id="main">', 1)[1].split("</main>", 1)[0]


def test_the_feeds_survey_open_link_leads_an_open_survey_to_its_form(app, client, organiser):
    """The entry links the survey's own page for good (/survey serves whichever is current): while
    the survey is open and its results are not public, that page invites to answer (still a 403:
    the figures are for key holders, and clients read the status)."""
    (entry,) = parsed(client)[0].entries
    path = entry.link.removeprefix("http://localhost")
    for stage in ("no responses", "published in early access"):
        if stage == "published in early access":
            fill(app, client)
        response = client.get(path)
        main = main_of(response.get_data(as_text=True))
        assert response.status_code == 403, stage
        assert "The Pulse of Clinical Aftercare” is open for responses" in main, stage
        assert 'href="/survey"' in main and 'name="results_key"' in main, stage
        current = main_of(client.get("/results").get_data(as_text=True))  # the current survey's page
        assert "is open for responses" in current and 'href="/survey"' in current, stage

    # Closed in early access: the key holders' gate, and no invitation to a form that takes nothing.
    with app.app_context():
        program.close_survey()
    response = client.get(path)
    main = main_of(response.get_data(as_text=True))
    assert response.status_code == 403 and 'name="results_key"' in main
    assert 'href="/survey"' not in main and "is closed" in main


def test_a_released_survey_below_the_threshold_invites_only_while_it_is_open(app, client, organiser):
    assert submit_api(client).status_code == 201
    with app.app_context():
        program.set_released(app.config["SURVEY"])
    main = main_of(client.get("/results/pulse-aftercare/1").get_data(as_text=True))
    assert "Results are not ready yet" in main and 'href="/survey"' in main
    with app.app_context():
        program.close_survey()
    main = main_of(client.get("/results/pulse-aftercare/1").get_data(as_text=True))
    assert "Results are not ready yet" in main and 'href="/survey"' not in main
    assert "closed" in main and "nothing is published" in main
