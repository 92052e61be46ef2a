"""Bar charts as geometry for an inline SVG (drawn by the ``bars`` template macro): no chart library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bar", "BarChart", "bar_chart"]


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    text: str


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    max_text: str
    baseline: float
    label_every: int


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    unit: str = "",
    width: int = 640,
    height: int = 180,
    max_labels: int = 12,
    max_bar_px: float = 56.0,
) -> BarChart:
    """Bars scaled so the largest value fills the plot; room below for labels, above for the scale."""
    if len(labels) != len(values):
        raise ValueError("one label per value")
    top, bottom, left = 16.0, 24.0, 4.0
    plot_h = height - top - bottom
    peak = max(values, default=0.0) or 1.0
    step = (width - left) / max(len(values), 1)
    # A few bars stay slim: one bar as wide as the plot reads as a block, not a figure.
    bar_w = min(step * 0.7, max_bar_px)
    bars = [
        Bar(
            x=round(left + i * step + (step - bar_w) / 2, 1),
            y=round(top + plot_h - plot_h * value / peak, 1),
            width=round(bar_w, 1),
            height=round(plot_h * value / peak, 1),
            label=label,
            value=value,
            text=f"{label}: {value:,.0f}{unit}",
        )
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
    ]
    return BarChart(
        width=width,
        height=height,
        bars=bars,
        max_text=f"{peak:,.0f}{unit}" if values else "",
        baseline=top + plot_h,
        label_every=max(1, -(-len(values) // max_labels)),
    )
