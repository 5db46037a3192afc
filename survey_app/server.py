"""Running Pulse under gunicorn, configured so that no client address or user agent is logged."""

from __future__ import annotations

import logging
import re

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from . import schedules, state

# Anything that looks like an IPv4 or IPv6 address in a log line is masked.
# (IPv6 needs eight groups or a "::", so clock times like 07:43:00 are left alone.)
ADDRESS = re.compile(
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b"
    r"|(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}"
    r"|(?:[0-9a-fA-F]{1,4}:)*[0-9a-fA-F]{0,4}::(?:[0-9a-fA-F]{1,4}:)*[0-9a-fA-F]{0,4}"
)


def mask_addresses(text: str) -> str:
    """The text with IP addresses replaced by a placeholder."""
    return ADDRESS.sub("[address]", text)


class AddressFilter(logging.Filter):
    """Masks addresses in every record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = mask_addresses(message), ()
        return True


class PrivateLogger(glogging.Logger):
    """gunicorn's logger without an access log and without client details in warnings."""

    def access(self, resp, req, environ, request_time) -> None:
        # No access log at all: it would hold addresses, agents and exact times.
        return None

    def warning(self, msg, *args, **kwargs) -> None:
        text = str(msg) % args if args else str(msg)
        if text.startswith("Invalid request from"):
            # gunicorn puts the client address and the raw request line here.
            super().warning("Invalid request rejected (client details not logged)")
            return
        super().warning(mask_addresses(text), **kwargs)

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.addFilter(AddressFilter())


class PulseServer(BaseApplication):
    """gunicorn serving a WSGI app built in each worker (so each worker has its own DB pool)."""

    def __init__(self, app_factory, options: dict):
        self.app_factory = app_factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        app = self.app_factory()
        if state.EXTENSION in getattr(app, "extensions", {}):  # a Pulse app (benchmarks serve bare ones)
            # In the worker, after the fork: surveys and rounds open and close on time even when
            # no request comes (schedules.py).
            schedules.scheduler(app).serve()
        return app


def gunicorn_options(host: str, port: int, workers: int, threads: int) -> dict:
    """The production gunicorn settings."""
    return {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "logger_class": "survey_app.server.PrivateLogger",
        "control_socket_disable": True,
        "graceful_timeout": 30,
        "timeout": 60,
        "preload_app": False,
    }
