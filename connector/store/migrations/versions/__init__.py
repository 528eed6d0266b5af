"""Migration scripts, one per revision; shipped as package data so a non-editable install finds them."""

__all__: list[str] = []
