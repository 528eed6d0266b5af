"""Product categories for receipt lines, from accounting's item catalog.

Tills know products by their own ids and rarely carry a category, but the loyalty rules need it (tobacco and
alcohol earn nothing, promo lines earn their own rate). The category of a sku comes from the item catalogs the
adapters read once per run (1C ``Catalog_Номенклатура`` → ``products``). The sync fills it in when it journals a
document, so the journal, the planned postings, the reconciliation and the console all see the same lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connector.model import Return, Sale

__all__ = ["sku_categories", "with_categories"]


def sku_categories(catalogs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """sku → category from the ``products`` of each catalog set (the first one naming a sku wins).

    Example:
        >>> sku_categories([{"products": {"g-1": {"sku": "A-1", "category": "tobacco"}}}])
        {'A-1': 'tobacco'}
    """
    out: dict[str, str] = {}
    for catalog in catalogs:
        for item in (catalog.get("products") or {}).values():
            if isinstance(item, Mapping) and item.get("sku") and item.get("category"):
                out.setdefault(str(item["sku"]), str(item["category"]))
    return out


def with_categories(document: Sale | Return, categories: Mapping[str, str]) -> Sale | Return:
    """The document with each uncategorised line given its sku's category; a line's own category is kept."""
    if all(line.category or not line.sku or line.sku not in categories for line in document.lines):
        return document
    lines = tuple(
        line
        if line.category or not line.sku
        else line.model_copy(update={"category": categories.get(line.sku)})
        for line in document.lines
    )
    return document.model_copy(update={"lines": lines})
