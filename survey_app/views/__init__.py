"""Blueprints: thin views that validate, call one function and render."""
