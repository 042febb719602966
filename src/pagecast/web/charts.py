"""Server-rendered SVG line charts with labelled axes (issue 21): time on x, a count on y,
tick labels on both. The dashboard's only chart code; the Content-Security-Policy allows no
inline style, so colours come from classes in dashboard.css (`series-<name>`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

__all__ = ["Series", "line_chart", "nice_ceiling"]

# The drawing area inside the viewBox, with room for the tick labels and axis titles.
_W, _H = 480, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 10, 10, 44

Series = tuple[str, Sequence[int]]  # (name, one count per x label)


def nice_ceiling(peak: int) -> int:
    """The y axis's top: 1, 2 or 5 times a power of ten, at least `peak` (and 1)."""
    if peak <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(peak)))
    for step in (1, 2, 5, 10):
        if step * power >= peak:
            return step * power
    return 10 * power  # pragma: no cover  (10 always fits)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    x_title: str,
    y_title: str,
    title: str,
    chart_id: str,
) -> Markup:
    """An SVG chart of `series` over `labels` (x), each a polyline with a dot per point and
    a `<title>` per point ("12:03: 40 sent"); x ticks at the first, middle and last label,
    y ticks at 0, half and the top. Markup.format escapes every value given to it."""
    count = len(labels)
    top = nice_ceiling(max((max(values, default=0) for _, values in series), default=0))
    inner_w, inner_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(i: int) -> float:
        return round(_LEFT + (inner_w * i / (count - 1) if count > 1 else inner_w / 2), 1)

    def y(n: float) -> float:
        return round(_TOP + inner_h - inner_h * n / top, 1)

    parts = [
        Markup(
            '<svg class="chart axes-chart" id="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        ).format(chart_id, _W, _H, title),
        Markup("<title>{}</title>").format(title),
        # Axes.
        Markup('<line class="axis" x1="{0}" y1="{1}" x2="{0}" y2="{2}"/>').format(
            _LEFT, _TOP, _TOP + inner_h
        ),
        Markup('<line class="axis" x1="{0}" y1="{1}" x2="{2}" y2="{1}"/>').format(
            _LEFT, _TOP + inner_h, _LEFT + inner_w
        ),
    ]
    for value in sorted({0, top // 2 if top >= 2 else 0, top}):
        parts.append(
            Markup(
                '<line class="grid" x1="{0}" y1="{1}" x2="{2}" y2="{1}"/>'
                '<text class="tick y-tick" x="{3}" y="{4}" text-anchor="end">{5}</text>'
            ).format(_LEFT, y(value), _LEFT + inner_w, _LEFT - 4, y(value) + 4, f"{value:,}")
        )
    for i in sorted({0, count // 2, count - 1}) if count else []:
        anchor = "start" if i == 0 else "end" if i == count - 1 else "middle"
        parts.append(
            Markup('<text class="tick x-tick" x="{}" y="{}" text-anchor="{}">{}</text>').format(
                x(i), _TOP + inner_h + 14, anchor if count > 1 else "middle", labels[i]
            )
        )
    parts.append(
        Markup(
            '<text class="axis-title x-title" x="{}" y="{}" text-anchor="middle">{}</text>'
        ).format(_LEFT + inner_w / 2, _H - 6, x_title)
    )
    parts.append(
        Markup(
            '<text class="axis-title y-title" x="{0}" y="{1}" text-anchor="middle" '
            'transform="rotate(-90 {0} {1})">{2}</text>'
        ).format(12, _TOP + inner_h / 2, y_title)
    )
    for name, values in series:
        points = " ".join(f"{x(i)},{y(n)}" for i, n in enumerate(values))
        parts.append(
            Markup('<g class="series series-{0}" data-series="{0}">').format(name)
            + Markup('<polyline points="{}"/>').format(points)
        )
        for i, n in enumerate(values):
            parts.append(
                Markup('<circle cx="{}" cy="{}" r="2"><title>{}: {} {}</title></circle>').format(
                    x(i), y(n), labels[i], f"{n:,}", name
                )
            )
        parts.append(Markup("</g>"))
    parts.append(Markup("</svg>"))
    legend = Markup(" ").join(
        Markup('<span class="dot series-{0}"></span>{0}').format(name) for name, _ in series
    )
    return Markup("").join(parts) + Markup('<p class="legend chart-legend">{}</p>').format(legend)
