"""A small bar chart as inline SVG, rendered on the server: no chart library, no JavaScript, no network."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from html import escape

__all__ = ["trend_svg"]

_WIDTH, _HEIGHT, _PAD, _AXIS = 640, 180, 24, 18


def trend_svg(points: Sequence[tuple[date, int]], label: Callable[[date], str], title: str = "") -> str:
    """An SVG bar chart of counts per day, scaled to its container (``viewBox``), with a title for screen readers.

    Example:
        >>> "<svg" in trend_svg([(date(2026, 11, 19), 3)], lambda d: d.isoformat())
        True
    """
    top = max((count for _, count in points), default=0) or 1
    slot = (_WIDTH - 2 * _PAD) / max(len(points), 1)
    bars = []
    for index, (day, count) in enumerate(points):
        height = (_HEIGHT - _PAD - _AXIS) * count / top
        x, y = _PAD + index * slot + slot * 0.15, _HEIGHT - _AXIS - height
        bars.append(
            f"<g><title>{escape(label(day))}: {count}</title>"
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}"/>'
            f'<text class="count" x="{x + slot * 0.35:.1f}" y="{y - 3:.1f}">{count if count else ""}</text>'
            f'<text class="day" x="{x + slot * 0.35:.1f}" y="{_HEIGHT - 4}">{escape(label(day))}</text></g>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<line class="axis" x1="{_PAD}" y1="{_HEIGHT - _AXIS}" x2="{_WIDTH - _PAD}" y2="{_HEIGHT - _AXIS}"/>'
        + "".join(bars)
        + "</svg>"
    )
