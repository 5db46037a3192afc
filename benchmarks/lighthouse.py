"""Lighthouse (mobile preset) on the pages a clinic sees, served by `pulse serve` over demo clinics.

Prints, per page, the median of --runs runs of the four Lighthouse scores (performance,
accessibility, best practices, SEO), the first contentful paint, the total blocking time and the
page weight (bytes transferred). /results is measured released, with a results key: the key
reaches the session the way a browser's does (the key form), and Lighthouse sends that session
cookie with every request (`--extra-headers`). Run on its own, never inside the tests:

    npm install --prefix /work/lh -E lighthouse@12.2.3
    CHROME_PATH=/usr/bin/chromium python benchmarks/lighthouse.py --lighthouse /work/lh/node_modules/.bin/lighthouse

`--code DIR` serves another checkout of Pulse (its directory goes first on PYTHONPATH), so the
same command measures the code before a change:

    git archive main | tar -x -C /tmp/before
    python benchmarks/lighthouse.py --code /tmp/before
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "lighthouse-" + "k" * 40
DEMO_CLINICS = 200
ANSWERS = {
    "practice_type": "psychiatry",
    "discharge_checks": ["vitals"],
    "first_followup": "within_week",
    "mood_tracking": "occasionally",
    "integration_support": ["external_referral"],
    "digital_tools": ["none"],
    "after_hours": "crisis_line",
    "followup_completion": "pct_50_74",
}
PAGES = ["/", "/survey", "/topics", "/thanks", "/results", "/guide"]
CATEGORIES = ["performance", "accessibility", "best-practices", "seo"]
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-background-networking"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pulse(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "survey_app", *args], env=env, check=True, capture_output=True)


def serve(code: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    """`pulse serve` over DEMO_CLINICS released demo clinics, from the checkout at `code`."""
    env = os.environ | {
        "PYTHONPATH": str(code),
        "SECRET_KEY": SECRET,
        "PULSE_MIN_FILL_SECONDS": "0",
        "PULSE_RATELIMIT_ENABLED": "false",
        "DATABASE_URL": f"sqlite:///{tmp / 'demo.sqlite3'}",
    }
    pulse(env, "migrate")
    pulse(env, "demo-data", str(DEMO_CLINICS), "--seed", "7")
    pulse(env, "release")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "survey_app", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/", timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("pulse serve exited") from None
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("pulse serve did not answer")


def session_with_key(url: str) -> str:
    """A Cookie header whose session holds a new results key, entered through the key form."""
    body = json.dumps({"answers": ANSWERS}).encode()
    request = urllib.request.Request(
        url + "/api/v1/responses", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        key = json.load(response)["results_key"]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(url + "/results/key").read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "results_key": key}).encode()
    page = opener.open(url + "/results", data=form).read().decode()
    if 'id="your-clinic"' not in page:
        raise RuntimeError("the key did not open the scorecard")
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def lighthouse(binary: str, url: str, cookie: str, out: Path) -> dict:
    """One Lighthouse run: the scores and the figures we print."""
    command = [
        binary,
        url,
        "--quiet",
        "--output=json",
        f"--output-path={out}",
        f"--only-categories={','.join(CATEGORIES)}",
        f"--chrome-flags={CHROME_FLAGS}",
        f"--extra-headers={json.dumps({'Cookie': cookie})}",
    ]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        env=os.environ | {"CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")},
    )
    report = json.loads(out.read_text())
    audits = report["audits"]
    row = {c: round(report["categories"][c]["score"] * 100) for c in CATEGORIES}
    row["fcp"] = audits["first-contentful-paint"]["numericValue"] / 1000
    row["tbt"] = audits["total-blocking-time"]["numericValue"]
    row["kb"] = audits["total-byte-weight"]["numericValue"] / 1000
    row["failed"] = sorted(
        a
        for a, v in audits.items()
        if v.get("score") is not None
        and v["score"] < 0.9
        and v.get("scoreDisplayMode") in ("binary", "numeric", "metricSavings")
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lighthouse",
        default=os.environ.get("LIGHTHOUSE", shutil.which("lighthouse")),
        help="the lighthouse command (env LIGHTHOUSE; npm install lighthouse@12)",
    )
    parser.add_argument("--code", type=Path, default=ROOT, help="the Pulse checkout to serve (default: this one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument("--keep", type=Path, help="keep the JSON reports in this directory")
    args = parser.parse_args()
    if not args.lighthouse:
        sys.exit(
            "lighthouse not found: npm install --prefix DIR lighthouse@12, "
            "then --lighthouse DIR/node_modules/.bin/lighthouse"
        )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        process, url = serve(args.code.resolve(), tmp)
        try:
            cookie = session_with_key(url)
            print(f"Lighthouse mobile preset, median of {args.runs} runs; code: {args.code.resolve()}")
            print(
                f"{'page':<10} {'perf':>4} {'a11y':>4} {'bp':>4} {'seo':>4} {'FCP s':>6} {'TBT ms':>7} "
                f"{'weight KB':>9}  below 0.9"
            )
            for path in args.pages.split(","):
                runs = []
                for n in range(args.runs):
                    out = (args.keep or tmp) / f"{path.strip('/') or 'index'}-{n}.json"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    runs.append(lighthouse(args.lighthouse, url + path, cookie, out))

                def med(field: str, runs: list = runs) -> float:
                    return statistics.median(r[field] for r in runs)

                failed = sorted({a for r in runs for a in r["failed"]})
                print(
                    f"{path:<10} {med('performance'):>4.0f} {med('accessibility'):>4.0f} "
                    f"{med('best-practices'):>4.0f} {med('seo'):>4.0f} {med('fcp'):>6.1f} {med('tbt'):>7.0f} "
                    f"{med('kb'):>9.0f}  {' '.join(failed)}",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(15)


if __name__ == "__main__":
    main()
