"""Alembic migrations of the state database; run through :func:`connector.store.engine.upgrade`."""

__all__: list[str] = []
