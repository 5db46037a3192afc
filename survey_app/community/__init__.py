"""The community: topics, moderation, voting rounds and approval ballots.

voting.py holds what may happen (shared by /topics, the API, /admin and the CLI); queries.py
holds every query on the community tables.
"""
