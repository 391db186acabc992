"""Small inline SVG charts for the console (no script, no chart library): one bar per point, a title per bar so a
hover or a screen reader gives the value, and a label naming the series and its latest value."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Point:
    label: str  # shown on hover, e.g. "14:05"
    value: float


def bar_heights(values: Sequence[float], height: int) -> list[int]:
    """Scale values to whole-pixel bar heights in [0, height]; any non-zero value stays visible (≥ 1 px)."""
    top = max((value for value in values if value > 0), default=0)
    if top <= 0:
        return [0 for _ in values]
    return [0 if value <= 0 else max(1, round(value / top * height)) for value in values]


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def bar_chart(name: str, points: Sequence[Point], *, css_class: str = "", width: int = 240,
              height: int = 40) -> Markup:
    """An SVG bar chart of `points` (oldest first), labelled "<name>: <latest value>"."""
    latest = points[-1].value if points else 0
    title = f"{name}: {_number(latest)} (last point), max {_number(max((p.value for p in points), default=0))}"
    slot = width / max(len(points), 1)
    bar = max(slot - 1, 1)
    bars = []
    for index, (point, bar_height) in enumerate(zip(points, bar_heights([p.value for p in points], height))):
        x = round(index * slot, 2)
        bars.append(f'<rect x="{x}" y="{height - bar_height}" width="{round(bar, 2)}" height="{bar_height}">'
                    f'<title>{escape(point.label)}: {_number(point.value)}</title></rect>')
    return Markup(
        f'<svg class="chart {escape(css_class)}" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" preserveAspectRatio="none">'
        f'<rect class="chart-bg" x="0" y="0" width="{width}" height="{height}"></rect>{"".join(bars)}</svg>')
