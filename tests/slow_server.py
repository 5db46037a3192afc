"""A real Pulse under gunicorn whose submissions pause after storing, for fault tests.

Usage: python tests/slow_server.py PORT WORKERS SECONDS. The pause sits between the commit and
the response, the window where a killed worker must lose nothing that was answered 201.
"""

import sys
import time

from survey_app import create_app, migrate
from survey_app.server import PulseServer, gunicorn_options


def slow_factory(seconds: float):
    def factory():
        app = create_app()

        @app.after_request
        def pause(response):
            if response.status_code == 201:
                time.sleep(seconds)
            return response

        return app

    return factory


if __name__ == "__main__":
    port, workers, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    migrate.upgrade(create_app().config["DATABASE_URL"])
    PulseServer(slow_factory(seconds), gunicorn_options("127.0.0.1", port, workers, 4)).run()
