"""Issue 21: did my answer count, and a participant who comes back (the device cookie)."""

from __future__ import annotations

import re

from survey_app import state

from .helpers import FULL_ANSWERS, fill, form_tokens, make_app, post_form

ANSWERED = "You have answered this survey."


def submit(client) -> str:
    """Answer through the form as a browser does; the key the thanks page shows."""
    assert post_form(client, FULL_ANSWERS).status_code == 303
    html = client.get("/thanks").get_data(as_text=True)
    return re.search(r'id="results-key-value"[^>]*value="([^"]+)"', html).group(1)


def remember(client, choice: str = "yes"):
    tokens = form_tokens(client.get("/thanks").get_data(as_text=True))
    return client.post("/thanks/remember", data={"csrf_token": tokens["csrf_token"], "remember": choice})


def device_cookies(response) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if "pulse_key=" in c]


def test_below_the_threshold_the_thanks_page_says_stored_and_when_results_appear(client):
    submit(client)
    html = client.get("/thanks").get_data(as_text=True)
    counted = html[html.index('id="counted-title"') : html.index("</section>", html.index('id="counted-title"'))]
    assert "Yes: your answer is stored." in counted
    assert "Results appear once 10 clinics have answered" in counted and "no running count" in counted
    assert "computed from your answers now" in counted
    # No number that moves with each answer: the only figure is the threshold.
    assert re.findall(r"\d+", re.sub(r"<[^>]+>", "", counted)) == ["10"]


def test_with_published_figures_the_thanks_page_and_scorecard_name_n_and_the_next_update(app, client):
    fill(app, client)  # a snapshot of 16
    other = app.test_client()
    submit(other)
    html = other.get("/thanks").get_data(as_text=True)
    assert (
        "The published figures come from 16 responses; they update at 32, and when the survey closes, "
        "and count your answer from then."
    ) in html
    card = other.get("/results").get_data(as_text=True)
    card = card[card.index('id="your-clinic"') :]
    assert (
        "Your answer is stored. These figures, from 16 responses, count it from their next update, at 32 "
        "responses or when the survey closes"
    ) in card
    assert "“your clinic” is computed from your answers now, so it shows already" in card


def test_a_counted_answer_is_said_to_be_counted(app, client):
    key = fill(app, client)[3]
    reader = app.test_client()
    tokens = form_tokens(reader.get("/results/key").get_data(as_text=True))
    reader.post("/results", data={"csrf_token": tokens["csrf_token"], "results_key": key})
    card = reader.get("/results").get_data(as_text=True)
    assert "Your answer is stored and counted in these figures, from 16 responses; they update at 32" in card


def test_the_device_cookie_is_set_only_when_chosen_and_holds_the_key_alone(app, client):
    from survey_app import keys

    assert "Start the survey" in client.get("/").get_data(as_text=True)
    key = submit(client)
    assert client.get_cookie("pulse_key") is None
    thanks = client.get("/thanks")
    assert not device_cookies(thanks) and "Remember my key on this device" in thanks.get_data(as_text=True)
    chosen = remember(client)
    assert chosen.status_code == 303
    [cookie] = device_cookies(chosen)
    assert cookie.startswith(f"pulse_key={keys.normalize(key)};")
    assert "Max-Age=7776000" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie and "__Host-" not in cookie  # plain HTTP on localhost
    assert "This device remembers your key for 90 days" in client.get("/thanks").get_data(as_text=True)
    # Read back: a new browser session with the device cookie alone is this clinic again.
    later = app.test_client()
    later.set_cookie("pulse_key", keys.normalize(key))
    landing = later.get("/").get_data(as_text=True)
    assert ANSWERED in landing and "Start the survey" not in landing
    assert 'href="/survey#survey-form">Answer for another clinic' in landing
    survey_page = later.get("/survey").get_data(as_text=True)
    assert ANSWERED in survey_page and 'id="survey-form"' in survey_page
    assert 'id="your-clinic"' in later.get("/results/pulse-aftercare/1").get_data(as_text=True)
    # Choosing "stop" removes it.
    stopped = remember(client, "no")
    [gone] = device_cookies(stopped)
    assert "pulse_key=;" in gone and ("Max-Age=0" in gone or "Expires=Thu, 01 Jan 1970" in gone)


def test_forgetting_the_key_forgets_it_on_the_device(app, client):
    submit(client)
    remember(client)
    tokens = form_tokens(client.get("/survey").get_data(as_text=True))
    forgot = client.post("/results/forget", data={"csrf_token": tokens["csrf_token"], "survey": "pulse-aftercare@1"})
    [gone] = device_cookies(forgot)
    assert "pulse_key=;" in gone
    assert client.get_cookie("pulse_key") is None
    assert ANSWERED not in client.get("/").get_data(as_text=True)


def test_an_unknown_device_key_is_dropped_not_an_error(client):
    from survey_app import keys

    client.set_cookie("pulse_key", keys.new_results_key())
    response = client.get("/")
    assert response.status_code == 200 and ANSWERED not in response.get_data(as_text=True)
    [gone] = device_cookies(response)
    assert "pulse_key=;" in gone


def test_over_https_the_device_cookie_is_host_only_and_secure(db_url):
    from werkzeug.datastructures import MultiDict

    from .helpers import answers_to_form

    app = make_app(db_url, PULSE_HTTPS=True)
    https = {"base_url": "https://localhost", "headers": {"Referer": "https://localhost/survey"}}
    try:
        client = app.test_client()
        tokens = form_tokens(client.get("/survey", **https).get_data(as_text=True))
        client.post("/survey", data=MultiDict(answers_to_form(FULL_ANSWERS) + list(tokens.items())), **https)
        tokens = form_tokens(client.get("/thanks", **https).get_data(as_text=True))
        chosen = client.post("/thanks/remember", data={"csrf_token": tokens["csrf_token"], "remember": "yes"}, **https)
        [cookie] = device_cookies(chosen)
        assert cookie.startswith("__Host-pulse_key=") and "Secure" in cookie and "Domain" not in cookie
        assert "<code>__Host-pulse_key</code>" in client.get("/privacy", **https).get_data(as_text=True)
    finally:
        state.of(app).close()


def test_privacy_says_what_remembering_means(client):
    html = client.get("/privacy").get_data(as_text=True)
    remembered = html[html.index('id="remembered"') :]
    assert "<code>pulse_key</code>" in remembered and "only if you choose it" in remembered
    assert "anyone who uses this device in those\n90 days sees your clinic's results" in remembered
