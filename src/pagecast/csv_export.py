"""CSV written for people to open in spreadsheets: no cell is ever run as a formula.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula (or
becomes one) in Excel, LibreOffice and Google Sheets: `=HYPERLINK(...)` in a contact's name
would run in the operator's spreadsheet (CSV injection, OWASP). Every export writes its rows
through `csv_row`, which keeps such a cell text by prefixing a `'`. Numbers and dates are
written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

__all__ = ["FORMULA_STARTS", "csv_chunks", "csv_lines", "csv_row", "safe_cell"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value for one CSV cell: None as empty, text that a spreadsheet would run kept text."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in values]


async def csv_lines(
    header: Sequence[str], rows: Iterable[Sequence[Any]] | AsyncIterable[Sequence[Any]]
) -> AsyncIterator[str]:
    """The CSV text of `header` and `rows`, a line at a time (for a streaming response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_row(header))
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            writer.writerow(csv_row(row))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    else:
        for row in rows:
            writer.writerow(csv_row(row))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


async def csv_chunks(
    header: Sequence[str], batches: AsyncIterable[Iterable[Sequence[Any]]]
) -> AsyncIterator[str]:
    """The CSV text of `header` and the rows of `batches`, one chunk per batch: a large
    export sends a few thousand writes, not one per row (each is a message through the
    server), and holds one batch at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_row(header))
    async for rows in batches:
        writer.writerows(csv_row(row) for row in rows)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
