"""Small SVG time-series charts for the soak report (standard library only, so the report needs no plotting
package): lines or dots against seconds, a linear or logarithmic y axis, shaded outage bands and marked events."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 980, 280
LEFT, RIGHT, TOP, BOTTOM = 70, 230, 34, 40


@dataclass
class Series:
    name: str
    color: str
    points: list[tuple[float, float]]
    dots: bool = False


@dataclass
class Chart:
    title: str
    y_label: str
    x_max: float
    series: list[Series] = field(default_factory=list)
    log_y: bool = False
    bands: list[tuple[float, float, str]] = field(default_factory=list)  # (from, to, label): the backend down
    marks: list[tuple[float, str]] = field(default_factory=list)  # (t, label): policy writes

    def svg(self) -> str:
        values = [y for s in self.series for _, y in s.points if y > 0 or not self.log_y]
        low, high = (min(values, default=0.0), max(values, default=1.0))
        if self.log_y:
            low, high = 10 ** math.floor(math.log10(max(low, 1e-3))), 10 ** math.ceil(math.log10(max(high, 1e-3)))
        else:
            low, high = 0.0, nice_ceiling(high)
        plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

        def x(t: float) -> float:
            return LEFT + plot_w * min(max(t / self.x_max, 0.0), 1.0)

        def y(v: float) -> float:
            if self.log_y:
                share = (math.log10(max(v, low)) - math.log10(low)) / (math.log10(high) - math.log10(low))
            else:
                share = (v - low) / (high - low) if high > low else 0.0
            return TOP + plot_h * (1 - min(max(share, 0.0), 1.0))

        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
               f'font-family="sans-serif" font-size="11">',
               f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
               f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{escape(self.title)}</text>']
        for start, end, label in self.bands:
            out.append(f'<rect x="{x(start):.1f}" y="{TOP}" width="{max(x(end) - x(start), 1):.1f}" height="{plot_h}" '
                       f'fill="#f4cccc" opacity="0.6"><title>{escape(label)}</title></rect>')
        for tick in y_ticks(low, high, self.log_y):
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{format_tick(tick)}</text>')
        step = nice_ceiling(self.x_max / 10)
        t = 0.0
        while t <= self.x_max + 1e-9:
            out.append(f'<text x="{x(t):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{t:g}</text>')
            t += step
        out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">seconds into the soak</text>')
        out.append(f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(self.y_label)}</text>')
        for t, label in self.marks:
            out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#7a5195" '
                       f'stroke-dasharray="4 3"><title>{escape(label)}</title></line>')
        for s in self.series:
            if s.dots:
                out += [f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.5" fill="{s.color}"/>' for px, py in s.points]
            elif s.points:
                path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in s.points)
                out.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="1.2"/>')
        legend = [(s.name, s.color) for s in self.series]
        legend += [("backend down → recovered", "#f4cccc")] if self.bands else []
        legend += [("policy file written", "#7a5195")] if self.marks else []
        for i, (name, color) in enumerate(legend):
            ly = TOP + 8 + 16 * i
            out.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
            out.append(f'<text x="{WIDTH - RIGHT + 26}" y="{ly + 1}">{escape(name)}</text>')
        out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
        out.append("</svg>")
        return "\n".join(out) + "\n"


def nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def y_ticks(low: float, high: float, log_y: bool) -> list[float]:
    if log_y:
        return [10.0 ** e for e in range(round(math.log10(low)), round(math.log10(high)) + 1)]
    step = nice_ceiling(high / 5)
    return [step * i for i in range(int(high / step) + 1)]


def format_tick(value: float) -> str:
    return f"{value:g}" if value < 1e4 else f"{value / 1000:g}k"
