"""Excel export: a Calls sheet and a Summary sheet with real date and number cells.

xlsxwriter in ``constant_memory`` mode flushes each row to a temporary file as soon as the next
one starts, and the calls arrive page by page, so a million-row export needs memory for one page,
not for the workbook. The finished file is then streamed from disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import xlsxwriter

from services.api.reports.models import CallRow, CriterionHeader, SummaryReport
from services.api.reports.table import cells, headers

DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
MAX_ROWS = 1_048_576  # Excel's sheet limit, header included


def _excel_time(value: datetime) -> datetime:
    """Excel cells have no time zone: the wall-clock time in the report's zone is written."""
    return value.replace(tzinfo=None)


def write_xlsx(
    path: Path,
    rows: Iterable[CallRow],
    criteria: list[CriterionHeader],
    summary: SummaryReport,
) -> int:
    """Write the workbook to ``path``; returns the number of call rows written."""
    wb = xlsxwriter.Workbook(
        str(path),
        {"constant_memory": True, "tmpdir": str(path.parent), "strings_to_numbers": False},
    )
    try:
        bold = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
        date = wb.add_format({"num_format": DATE_FORMAT})
        percent = wb.add_format({"num_format": "0.0%"})
        number = wb.add_format({"num_format": "#,##0.##"})
        written = _calls_sheet(wb, rows, criteria, summary.tz, bold, date)
        _summary_sheet(wb, summary, bold, date, percent, number)
    finally:
        wb.close()
    return written


def _calls_sheet(
    wb: xlsxwriter.Workbook,
    rows: Iterable[CallRow],
    criteria: list[CriterionHeader],
    tz_name: str,
    bold: object,
    date: object,
) -> int:
    ws = wb.add_worksheet("Calls")
    head = headers(criteria, tz_name)
    ws.write_row(0, 0, head, bold)
    ws.freeze_panes(1, 0)
    ws.set_column(0, 1, 20)
    ws.set_column(2, len(head) - 1, 16)
    r = 0
    for row in rows:
        r += 1
        if r == MAX_ROWS - 1:  # the sheet's last row says that rows are missing
            ws.write_string(r, 0, "… truncated: an Excel sheet holds 1,048,576 rows; use CSV")
            break
        for c, value in enumerate(cells(row, criteria)):
            if value is None:
                continue
            if isinstance(value, datetime):
                ws.write_datetime(r, c, _excel_time(value), date)
            elif isinstance(value, (int, float)):
                ws.write_number(r, c, value)
            else:
                ws.write_string(r, c, value)
    ws.autofilter(0, 0, max(r, 1), len(head) - 1)
    return r


def _summary_sheet(
    wb: xlsxwriter.Workbook,
    summary: SummaryReport,
    bold: object,
    date: object,
    percent: object,
    number: object,
) -> None:
    ws = wb.add_worksheet("Summary")
    ws.freeze_panes(1, 0)
    ws.set_column(0, 0, 28)
    ws.set_column(1, 8, 14)
    cols = ["Criterion", "Count", "Error rate", "Success rate", "Sum", "Min", "Max", "Average"]
    ws.write_row(0, 0, cols, bold)
    r = 0
    for f in summary.criteria:
        r += 1
        ws.write_string(r, 0, f.label)
        ws.write_number(r, 1, f.count)
        for c, value, fmt in (
            (2, f.error_rate, percent),
            (3, f.success_rate, percent),
            (4, f.sum, number),
            (5, f.min, number),
            (6, f.max, number),
            (7, f.avg, number),
        ):
            if value is not None:
                ws.write_number(r, c, value, fmt)
    r += 2
    ws.write_row(r, 0, ["Criterion", "Code", "Label", "Count", "Share"], bold)
    for f in summary.criteria:
        for d in f.distribution or []:
            r += 1
            ws.write_string(r, 0, f.label)
            ws.write_string(r, 1, d.code)
            ws.write_string(r, 2, d.label)
            ws.write_number(r, 3, d.count)
            if d.share is not None:
                ws.write_number(r, 4, d.share, percent)
    r += 2
    ws.write_string(r, 0, "From", bold)
    ws.write_datetime(r, 1, _excel_time(summary.from_), date)
    ws.write_string(r + 1, 0, "To", bold)
    ws.write_datetime(r + 1, 1, _excel_time(summary.to), date)
    ws.write_string(r + 2, 0, "Time zone", bold)
    ws.write_string(r + 2, 1, summary.tz)
    ws.write_string(r + 3, 0, "Profile", bold)
    ws.write_string(r + 3, 1, f"{summary.profile_id} (version {summary.profile_version})")
