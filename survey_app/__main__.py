"""`python -m survey_app` is the same as `pulse`."""

from .cli import run

run()
