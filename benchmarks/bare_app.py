"""The ceiling: a bare Flask app under the same gunicorn settings as `pulse serve`.

POST /insert stores one row in the same kind of table through the same engine rules;
GET /bytes/NAME returns fixed bytes: what Pulse serves for the same snapshot, read from the file
NAME in BYTES_DIR (http_bench.py saves "api" from /api/v1/benchmarks, "results" from /results,
"results-key" from /results with a participant's key; "api" is JSON, the rest HTML). Usage:
python benchmarks/bare_app.py PORT WORKERS THREADS DATABASE_URL [BYTES_DIR]
"""

import json
import sys
import uuid
from pathlib import Path

from flask import Flask, Response, request
from sqlalchemy import text

from survey_app.server import PulseServer, gunicorn_options
from survey_app.storage import make_engine


def factory(url: str, bodies: dict[str, tuple[bytes, str]]):
    def make():
        app = Flask(__name__)
        engine = make_engine(url).execution_options(pulse_write=True)

        @app.post("/insert")
        def insert():
            answers = json.dumps(request.get_json()["answers"], separators=(",", ":"), sort_keys=True)
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO responses (id, survey_id, survey_version, answers, week, key_hash, "
                        "in_snapshot) VALUES (:id, 's', 1, :a, '2026-W48', :k, false)"
                    ),
                    {"id": str(uuid.uuid4()), "a": answers, "k": uuid.uuid4().hex},
                )
            return {"ok": True}, 201

        @app.get("/bytes/<name>")
        def fixed(name):
            body, mimetype = bodies[name]
            return Response(body, mimetype=mimetype)

        return app

    return make


if __name__ == "__main__":
    port, workers, threads, url = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    folder = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    bodies = {"api": (b"{}", "application/json")}
    if folder:
        bodies = {
            path.name: (path.read_bytes(), "application/json" if path.name == "api" else "text/html")
            for path in folder.iterdir()
        }
    PulseServer(factory(url, bodies), gunicorn_options("127.0.0.1", port, workers, threads)).run()
