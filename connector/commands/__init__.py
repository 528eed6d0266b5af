"""Command modules of the ``loyalty-connector`` CLI; :mod:`connector.cli` registers them explicitly."""

__all__: list[str] = []
