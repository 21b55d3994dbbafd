"""Charts drawn on the server as SVG: no JavaScript, nothing fetched, readable when printed.

Horizontal bars with the label and the count in text beside each, so the figure is legible without
colour and a screen reader gets the numbers from the ``<title>`` and the text.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

BAR_HEIGHT = 22
GAP = 6
LABEL_WIDTH = 190
BAR_WIDTH = 360
COUNT_WIDTH = 90


def bar_chart(items: Sequence[tuple[str, int | float]], *, title: str, unit: str = "") -> Markup:
    """A horizontal bar chart of ``(label, value)`` as inline SVG (values of 0 keep their row)."""
    rows = list(items)
    top = max((float(v) for _, v in rows), default=0.0) or 1.0
    height = max(1, len(rows)) * (BAR_HEIGHT + GAP) + GAP
    width = LABEL_WIDTH + BAR_WIDTH + COUNT_WIDTH
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(rows):
        y = GAP + i * (BAR_HEIGHT + GAP)
        length = round(BAR_WIDTH * float(value) / top, 1)
        shown = f"{value:g}" if isinstance(value, float) else f"{value:,}"
        baseline = f"{y + BAR_HEIGHT * 0.7:.0f}"
        value_text = f"{escape(shown)}{escape(unit)}"
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{baseline}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{length}" height="{BAR_HEIGHT}">'
            f"<title>{escape(label)}: {value_text}</title></rect>"
            f'<text x="{LABEL_WIDTH + length + 6}" y="{baseline}">{value_text}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text piece above is escaped
