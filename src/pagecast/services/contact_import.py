"""CSV import of contacts: valid rows are upserted in bulk, invalid rows are reported.

Columns: `psid` (required), `first_name`, `last_name`, `tags` (semicolon-separated) and
`last_inbound_at` (ISO 8601; without a timezone it is read as UTC). An existing contact keeps
the values an empty cell leaves out, keeps its tags (new ones are added) and keeps the later
of the two `last_inbound_at`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import InvalidInput
from pagecast.models import Contact, utcnow
from pagecast.permissions import Actor
from pagecast.services import audit, contacts, pages

__all__ = ["COLUMNS", "ImportReport", "RowError", "decode", "import_csv"]

COLUMNS = ("psid", "first_name", "last_name", "tags", "last_inbound_at")
MAX_ERRORS_LISTED = 1000
_PSID = re.compile(r"^\d{1,64}$")
_LIMITS = {"first_name": 255, "last_name": 255}
# Lines of many megabytes must become a row error, not a csv.Error that ends the import.
csv.field_size_limit(64 * 1024 * 1024)


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_LISTED:
            self.errors.append(error)


def decode(data: bytes) -> str:
    """The file as text; anything but UTF-8 (a BOM is fine) is refused with where it broke."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"The file is not UTF-8 text: byte 0x{data[exc.start]:02X} on line {line} cannot be read. "
            "Save it as UTF-8 (in Excel: “CSV UTF-8”) and import it again.",
            field="file",
        ) from exc


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if parsed > utcnow() + timedelta(minutes=5):
        raise ValueError("is in the future")
    return parsed


def _rows(text: str, report: ImportReport) -> Iterator[tuple[int, dict[str, Any], list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    if "psid" not in header:
        raise InvalidInput(
            "The CSV has no `psid` column. The first line must name the columns: "
            f"psid (required), {', '.join(COLUMNS[1:])}.",
            field="psid",
        )
    report.ignored_columns = [h for h in header if h not in COLUMNS]
    index = {name: header.index(name) for name in COLUMNS if name in header}
    seen: dict[str, int] = {}
    for number, cells in enumerate(reader, start=2):  # row 1 is the header, as in a spreadsheet
        if not any(c.strip() for c in cells):
            continue
        report.rows += 1
        values = {name: (cells[i].strip() if i < len(cells) else "") for name, i in index.items()}
        problem = _check(values, seen, number)
        if problem is not None:
            report.add_error(RowError(number, *problem))
            continue
        seen[values["psid"]] = number
        tags = [t.strip() for t in values.get("tags", "").split(";") if t.strip()]
        row: dict[str, Any] = {
            "psid": values["psid"],
            "first_name": values.get("first_name") or None,
            "last_name": values.get("last_name") or None,
            "last_inbound_at": _parse_time(values["last_inbound_at"])
            if values.get("last_inbound_at")
            else None,
        }
        yield number, row, tags


def _check(values: dict[str, str], seen: dict[str, int], number: int) -> tuple[str, str] | None:
    psid = values["psid"]
    if not psid:
        return "psid", "is empty; every row needs the person's Page-scoped id"
    if not _PSID.match(psid):
        return "psid", f"{psid[:40]!r} is not a Page-scoped id (digits only, at most 64)"
    if psid in seen:
        return "psid", f"{psid} already appears on row {seen[psid]}"
    for name, limit in _LIMITS.items():
        if len(values.get(name, "")) > limit:
            return name, f"is {len(values[name]):,} characters; at most {limit}"
    for tag in values.get("tags", "").split(";"):
        if len(tag.strip()) > 100:
            return "tags", f"a tag is {len(tag.strip()):,} characters; at most 100"
    if values.get("last_inbound_at"):
        try:
            _parse_time(values["last_inbound_at"])
        except ValueError as exc:
            return (
                "last_inbound_at",
                f"{values['last_inbound_at'][:40]!r} {exc}; use ISO 8601, e.g. 2026-11-20T14:05:00Z",
            )
    return None


def _upsert_statement(session: AsyncSession) -> Any:
    """One INSERT … ON CONFLICT for every batch: compiled once, run as an executemany."""
    table = Contact.__table__
    stmt = contacts.insert_for(session)(table)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["page_id", "psid"],
        set_={
            "first_name": func.coalesce(new.first_name, table.c.first_name),
            "last_name": func.coalesce(new.last_name, table.c.last_name),
            "last_inbound_at": case(
                (table.c.last_inbound_at.is_(None), new.last_inbound_at),
                (new.last_inbound_at > table.c.last_inbound_at, new.last_inbound_at),
                else_=table.c.last_inbound_at,
            ),
            "updated_at": new.updated_at,
        },
    )


async def _upsert(
    session: AsyncSession, page_id: int, batch: list[tuple[dict[str, Any], list[str]]]
) -> None:
    now = utcnow()
    rows = [row | {"page_id": page_id, "created_at": now, "updated_at": now} for row, _ in batch]
    # executemany with RETURNING: SQLAlchemy batches it into multi-row statements
    # ("insertmanyvalues") on both backends, compiled once.
    result = await session.execute(
        _upsert_statement(session).returning(Contact.__table__.c.psid, Contact.__table__.c.id), rows
    )
    ids = {psid: contact_id for psid, contact_id in result}
    await contacts.add_tags(
        session, [(ids[row["psid"]], tag) for row, tags in batch for tag in tags]
    )


async def import_csv(
    session: AsyncSession,
    actor: Actor,
    page_id: int,
    data: bytes,
    *,
    batch_size: int = 1000,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV file's contacts into a Page; `on_progress` gets the rows read so far."""
    page = await pages.get(session, page_id)
    text = decode(data)
    report = ImportReport()
    batch: list[tuple[dict[str, Any], list[str]]] = []
    for _number, row, tags in _rows(text, report):
        batch.append((row, tags))
        if len(batch) >= batch_size:
            await _upsert(session, page.id, batch)
            report.imported += len(batch)
            batch = []
            if on_progress:
                on_progress(report.rows)
    if batch:
        await _upsert(session, page.id, batch)
        report.imported += len(batch)
    if on_progress:
        on_progress(report.rows)
    await audit.record(
        session,
        actor,
        "contacts.imported",
        object_type="page",
        object_id=page.id,
        details={"rows": report.rows, "imported": report.imported, "errors": report.error_count},
    )
    return report
