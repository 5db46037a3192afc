"""WSGI entry point for any server: `gunicorn wsgi:app` (`pulse serve` does this for you)."""

from survey_app import create_app

app = create_app()
