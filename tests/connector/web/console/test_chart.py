"""The discrepancy trend chart is inline SVG with a bar and a title per day."""

from __future__ import annotations

import re
from datetime import date

from connector.web.console.chart import trend_svg


def test_bars_scale_to_the_highest_day_and_carry_titles() -> None:
    svg = trend_svg(
        [(date(2026, 11, 18), 0), (date(2026, 11, 19), 4), (date(2026, 11, 20), 2)], lambda d: f"{d:%d.%m}"
    )
    heights = [float(h) for h in re.findall(r'class="bar" [^>]*height="([\d.]+)"', svg)]
    assert heights[0] == 0
    assert heights[1] == 2 * heights[2]
    assert "<title>19.11: 4</title>" in svg
    assert svg.startswith("<svg")
    assert "script" not in svg


def test_an_empty_trend_still_draws_an_axis() -> None:
    svg = trend_svg([], str)
    assert 'class="axis"' in svg
    assert 'class="bar"' not in svg
