"""Revisions of the edge database, oldest first."""
