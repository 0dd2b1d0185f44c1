"""Alembic migrations of the edge database (:mod:`tinyact.edge.schema`)."""
