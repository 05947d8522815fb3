"""Small inline SVG charts for the backtest page: no scripts, no fonts, nothing fetched.

>>> svg = bars("Leads", ["a", "b"], {"x": [1, 2]})
>>> svg.startswith("<figure") and "<rect" in svg
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Final

WIDTH: Final = 720
HEIGHT: Final = 220
LEFT: Final = 48
BOTTOM: Final = 36
TOP: Final = 12
PALETTE: Final = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b", "#ec4899")


def color(index: int) -> str:
    """The series colour for a position."""
    return PALETTE[index % len(PALETTE)]


def _frame(title: str, body: list[str], legend: Sequence[tuple[str, str]], top: float) -> str:
    plot_h = HEIGHT - BOTTOM - TOP
    ticks = []
    for n in range(5):
        value = top * n / 4
        y = TOP + plot_h - plot_h * n / 4
        ticks.append(
            f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{_number(value)}</text>"
        )
    keys = "".join(
        f'<span class="key"><i style="background:{c}"></i>{escape(name)}</span>'
        for name, c in legend
    )
    return (
        f'<figure><figcaption>{escape(title)}</figcaption><div class="legend">{keys}</div>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"{''.join(ticks)}{''.join(body)}</svg></figure>"
    )


def _number(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}"


def _labels(labels: Sequence[str], slot: float) -> list[str]:
    every = max(1, len(labels) // 12)
    return [
        f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - BOTTOM + 16}" class="tick" '
        f'text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def bars(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    stacked: bool = False,
) -> str:
    """Bars per label, one per series side by side, or stacked."""
    names = list(series)
    if stacked:
        top = max([sum(series[n][i] for n in names) for i in range(len(labels))] or [0])
    else:
        top = max([v for n in names for v in series[n]] or [0])
    top = top or 1.0
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(labels))
    body = []
    for i in range(len(labels)):
        base = 0.0
        for s, name in enumerate(names):
            value = series[name][i]
            h = plot_h * value / top
            if stacked:
                x, w, y = LEFT + slot * i + slot * 0.1, slot * 0.8, TOP + plot_h - base - h
                base += h
            else:
                w = slot * 0.8 / len(names)
                x, y = LEFT + slot * i + slot * 0.1 + w * s, TOP + plot_h - h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" '
                f'fill="{color(s)}"><title>{escape(name)} {escape(labels[i])}: '
                f"{_number(value)}</title></rect>"
            )
    body += _labels(labels, slot)
    return _frame(title, body, [(n, color(s)) for s, n in enumerate(names)], top)


def lines(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]]) -> str:
    """One line per series over the labels."""
    names = list(series)
    top = max([v for n in names for v in series[n]] or [0]) or 1.0
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(labels))
    body = []
    for s, name in enumerate(names):
        points = " ".join(
            f"{LEFT + slot * (i + 0.5):.1f},{TOP + plot_h - plot_h * v / top:.1f}"
            for i, v in enumerate(series[name])
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{color(s)}" stroke-width="2"/>'
        )
    body += _labels(labels, slot)
    return _frame(title, body, [(n, color(s)) for s, n in enumerate(names)], top)
