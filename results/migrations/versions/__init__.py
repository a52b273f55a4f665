"""Alembic revisions of the leaderboard schema, one file each, written by hand (see ``results.migrations``)."""
