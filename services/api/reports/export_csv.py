"""CSV export: produced row by row while the client downloads it (UTF-8, RFC 4180 quoting,
ISO 8601 times with offset)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime

from services.api.reports.models import CallRow, CriterionHeader
from services.api.reports.table import cells, headers

FLUSH_BYTES = 64 * 1024


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def csv_chunks(
    rows: Iterable[CallRow], criteria: list[CriterionHeader], tz_name: str
) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(headers(criteria, tz_name))
    for row in rows:
        writer.writerow([_text(v) for v in cells(row, criteria)])
        if buf.tell() >= FLUSH_BYTES:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()
