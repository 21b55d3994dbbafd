"""Hand-laid sheets (a report's Summary): a title, blocks of rows written top to bottom, charts.

The Summary sheets are read on a laptop screen and printed on one page, so the layout is fixed:
the text blocks fill columns A to C (figure, value, what it means) and the charts stand in a column
to their right, starting at the top, where a 1366-pixel-wide screen shows them without scrolling.
Long sentences are merged across the block's columns and wrapped, so they print whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from openpyxl.chart import BarChart, Reference
from openpyxl.chart.label import DataLabelList
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from ccm_tasks.reports.tables import Kind
from ccm_tasks.reports.xlsx import put

# The font named on every styled cell: a Font with only ``bold`` set has no name, and LibreOffice
# then falls back to a serif face.
FONT = "Calibri"
TITLE_FONT = Font(name=FONT, bold=True, size=16)
SUBTITLE_FONT = Font(name=FONT, italic=True, color="444444")
HEADING_FONT = Font(name=FONT, bold=True)
HEADING_FILL = PatternFill("solid", fgColor="DDE4EE")
TOTAL_BORDER = Border(top=Side(style="thin"))
HEADING_BORDER = Border(bottom=Side(style="thin"))
CHART_WIDTH_CM = 12.0
CHART_HEIGHT_CM = 7.0
ROWS_PER_CHART = 16  # 7 cm of 15-point rows, with a gap
COLOURS = ("4472C4", "ED7D31", "A5A5A5")


@dataclass(frozen=True)
class Cell:
    """A value and how it is shown."""

    value: Any
    kind: Kind = "text"


class Layout:
    """Writes a sheet top to bottom: :meth:`title`, :meth:`block`, :meth:`sentence`; charts beside."""

    def __init__(self, ws: Any, widths: Sequence[float], *, charts_beside: bool = True) -> None:
        self.ws = ws
        self.row = 1
        self.widths = tuple(widths)
        self.charts_beside = charts_beside
        for i, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        self.chart_column = get_column_letter(len(widths) + 2)  # one narrow gap column
        if charts_beside:
            ws.column_dimensions[get_column_letter(len(widths) + 1)].width = 2
        self._chart_row = 3

    @property
    def span(self) -> int:
        """How many columns the text blocks fill."""
        return len(self.widths)

    def title(self, text: str, lines: Iterable[str]) -> None:
        """Row 1: the title; then one wrapped line each (period, zone, status)."""
        put(self.ws, 1, 1, text)
        self.ws.cell(row=1, column=1).font = TITLE_FONT
        self.ws.row_dimensions[1].height = 24
        self.row = 2
        for line in lines:
            self.sentence(line, font=SUBTITLE_FONT)
        self.row += 1

    def sentence(self, text: str, *, font: Font | None = None) -> None:
        """A line of text merged across the blocks' columns and wrapped (it prints whole)."""
        ws = self.ws
        put(ws, self.row, 1, text)
        cell = ws.cell(row=self.row, column=1)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        if font is not None:
            cell.font = font
        ws.merge_cells(start_row=self.row, start_column=1, end_row=self.row, end_column=self.span)
        # Neither Excel nor LibreOffice grows a merged row to fit its text: size it here (about one
        # character per width unit, less for proportional text).
        lines = max(1, math.ceil(len(text) / (sum(self.widths) * 1.1)))
        ws.row_dimensions[self.row].height = 15 * lines + 2
        self.row += 1

    def block(self, heading: Sequence[str], rows: Iterable[Sequence[Cell]], *,
              total: Sequence[Cell] | None = None, note: str | None = None) -> tuple[int, int]:
        """A table: a bold shaded heading row, the rows, an optional bold totals row; a blank row after.
        Returns the first and last data rows (for a chart's references)."""
        ws = self.ws
        for col, text in enumerate(heading, start=1):
            put(ws, self.row, col, text)
            cell = ws.cell(row=self.row, column=col)
            cell.font, cell.fill, cell.border = HEADING_FONT, HEADING_FILL, HEADING_BORDER
            if col > 1:
                cell.alignment = Alignment(horizontal="right" if col < self.span else "left",
                                           indent=1 if col == self.span else 0)
        self.row += 1
        first = self.row
        for values in rows:
            self._row(values)
        last = self.row - 1
        if total is not None:
            self._row(total, bold=True)
        if note:
            self.sentence(note, font=SUBTITLE_FONT)
        self.row += 1
        return first, last

    def _row(self, values: Sequence[Cell], *, bold: bool = False) -> None:
        for col, c in enumerate(values, start=1):
            put(self.ws, self.row, col, c.value, c.kind)
            cell = self.ws.cell(row=self.row, column=col)
            if col == self.span and self.widths[-1] > 20:
                # The wide text column: left-aligned, set off from the value beside it, and wrapped
                # (the row grows) rather than cut at the page's edge.
                cell.alignment = Alignment(horizontal="left", indent=1, wrap_text=isinstance(c.value, str))
            if bold:
                cell.font, cell.border = HEADING_FONT, TOTAL_BORDER
        self.row += 1

    def bar_chart(self, title: str, data: Sequence[Reference], categories: Reference, *,
                  horizontal: bool = False, axis_title: str | None = None,
                  number_format: str | None = None, width_cm: float = CHART_WIDTH_CM) -> None:
        """A bar chart in the chart column, under the previous one (or, for a layout without a chart
        column, here, under the text). One series is labelled with its values, so the chart reads
        without gridlines."""
        chart = BarChart()
        chart.type = "bar" if horizontal else "col"
        chart.title = title
        chart.style = 10
        chart.height, chart.width = CHART_HEIGHT_CM, width_cm
        for ref in data:
            chart.add_data(ref, titles_from_data=True)
        chart.set_categories(categories)
        for series, colour in zip(chart.series, COLOURS, strict=False):
            series.graphicalProperties.solidFill = colour
            series.graphicalProperties.line.solidFill = colour
        if len(data) == 1:
            chart.legend = None
            # Only the value: LibreOffice shows the series and category names too unless told not to.
            chart.dataLabels = DataLabelList(showVal=True, showSerName=False, showCatName=False,
                                             showLegendKey=False, showPercent=False)
        else:
            chart.legend.position = "b"
        if horizontal:
            chart.y_axis.scaling.orientation = "minMax"
            chart.x_axis.scaling.orientation = "maxMin"  # the first category on top, as in the table
        if axis_title:
            chart.y_axis.title = axis_title
        if number_format:
            chart.y_axis.number_format = number_format
            if chart.dataLabels is not None:
                chart.dataLabels.numFmt = number_format
        chart.y_axis.majorGridlines = None
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        chart.gapWidth = 60
        if self.charts_beside:
            self.ws.add_chart(chart, f"{self.chart_column}{self._chart_row}")
            self._chart_row += ROWS_PER_CHART
        else:
            self.ws.add_chart(chart, f"A{self.row}")
            self.row += ROWS_PER_CHART

    @property
    def print_right(self) -> str:
        """The column letter the charts reach (a chart is about 7 default-width columns wide)."""
        from openpyxl.utils import column_index_from_string

        return str(get_column_letter(column_index_from_string(self.chart_column) + 7))

    @property
    def last_row(self) -> int:
        """The last row the text or the charts reach (the page to print)."""
        return max(self.row, self._chart_row if self.charts_beside else 0)


def references(ws: Any, column: int, first: int, last: int, *, with_title: bool = True) -> Reference:
    """Cells of one column, from the heading row above ``first`` when ``with_title``."""
    return Reference(ws, min_col=column, min_row=first - 1 if with_title else first, max_row=last)
