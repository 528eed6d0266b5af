"""Adapters: one module per external system, over shared protocol clients (DESIGN.md §1, §5)."""

__all__: list[str] = []
