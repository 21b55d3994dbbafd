"""Chart images (PNG) for mail bodies, where a workbook's native chart cannot go.

Mail clients show PNG images inline (``cid:`` parts) but not SVG, and a plotting library would be a
heavy dependency for one bar chart, so this draws it with Pillow's ImageDraw and Pillow's own font:
the same picture on every machine, no system fonts needed. Drawn at twice the size it is shown, so
it stays sharp on high-density screens.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

SCALE = 2
WIDTH, HEIGHT = 720, 300  # as shown (CSS pixels)
COLOURS = ("#4472C4", "#ED7D31", "#A5A5A5")
INK, GRID, MUTED = "#222222", "#E3E3E3", "#666666"


@dataclass(frozen=True)
class Series:
    """One set of bars."""

    name: str
    values: Sequence[float]


def bar_chart_png(title: str, categories: Sequence[str], series: Sequence[Series]) -> bytes:
    """A grouped column chart as PNG bytes: one group per category, one bar per series, each bar
    labelled with its value, a legend under the title."""
    s = SCALE
    image = Image.new("RGB", (WIDTH * s, HEIGHT * s), "white")
    draw = ImageDraw.Draw(image)
    title_font = ImageFont.load_default(size=15 * s)
    font = ImageFont.load_default(size=11 * s)
    small = ImageFont.load_default(size=10 * s)
    draw.text((16 * s, 10 * s), title, fill=INK, font=title_font)
    x = 16 * s
    for i, item in enumerate(series):  # legend
        colour = COLOURS[i % len(COLOURS)]
        draw.rectangle((x, 36 * s, x + 10 * s, 46 * s), fill=colour)
        draw.text((x + 14 * s, 34 * s), item.name, fill=MUTED, font=font)
        x += int(draw.textlength(item.name, font=font)) + 34 * s

    left, right, top, bottom = 44 * s, (WIDTH - 12) * s, 62 * s, (HEIGHT - 34) * s
    peak = max((float(v) for item in series for v in item.values), default=0.0)
    step = _nice_step(peak)
    ceiling = max(step, step * -(-peak // step)) if peak > 0 else 1.0
    tick = 0.0
    while tick <= ceiling + 1e-9:  # horizontal grid with its values
        y = bottom - (bottom - top) * tick / ceiling
        draw.line((left, y, right, y), fill=GRID, width=s)
        label = f"{tick:,.0f}"
        draw.text((left - 6 * s - draw.textlength(label, font=small), y - 6 * s), label, fill=MUTED,
                  font=small)
        tick += step
    draw.line((left, bottom, right, bottom), fill=INK, width=s)

    groups = max(1, len(categories))
    group_width = (right - left) / groups
    bar_width = group_width * 0.8 / max(1, len(series))
    every = max(1, -(-groups * 46 // (WIDTH - 56)))  # thin out category labels that would overlap
    for g, category in enumerate(categories):
        x0 = left + g * group_width + group_width * 0.1
        for i, item in enumerate(series):
            value = float(item.values[g]) if g < len(item.values) else 0.0
            height = (bottom - top) * value / ceiling
            bx = x0 + i * bar_width
            if value > 0:
                draw.rectangle((bx, bottom - height, bx + bar_width - s, bottom),
                               fill=COLOURS[i % len(COLOURS)])
                text = f"{value:,.0f}"
                if draw.textlength(text, font=small) <= bar_width + 4 * s:
                    draw.text((bx + (bar_width - draw.textlength(text, font=small)) / 2,
                               bottom - height - 13 * s), text, fill=INK, font=small)
        if g % every == 0:
            width = draw.textlength(category, font=small)
            draw.text((left + g * group_width + (group_width - width) / 2, bottom + 5 * s), category,
                      fill=MUTED, font=small)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _nice_step(peak: float) -> float:
    """A grid step of 1, 2 or 5 times a power of ten giving four or five lines."""
    if peak <= 0:
        return 1.0
    raw = peak / 4
    power = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)
