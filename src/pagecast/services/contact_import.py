"""CSV import of contacts: the file read in batches of rows, valid rows upserted in bulk.

Columns: `psid` (required), `first_name`, `last_name`, `tags` (semicolon-separated) and
`last_inbound_at` (ISO 8601; without a timezone it is read as UTC). An existing contact keeps
the values an empty cell leaves out, keeps its tags (new ones are added) and keeps the later
of the two `last_inbound_at`.

`CsvReader` does the CPU work (decoding, parsing, checking every row) and is meant to run in
a worker thread (`pagecast.import_runner`), a batch of N rows at a time whatever their
validity, so no file holds the event loop; `upsert` writes one batch in the caller's
transaction. The background job around them is `services.import_jobs`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import case, func, text
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import InvalidInput
from pagecast.models import Contact, utcnow
from pagecast.services import contacts

__all__ = [
    "COLUMNS",
    "MAX_ERRORS_LISTED",
    "Batch",
    "CsvReader",
    "Row",
    "RowError",
    "check_utf8",
    "upsert",
]

COLUMNS = ("psid", "first_name", "last_name", "tags", "last_inbound_at")
MAX_ERRORS_LISTED = 1000
_PSID = re.compile(r"^\d{1,64}$")
_LIMITS = {"first_name": 255, "last_name": 255}
_MAX_TAG = 100
# A line of many megabytes must become a row error, not a csv.Error that ends the import;
# the file's size cap (settings.import_max_bytes) bounds it.
csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str


@dataclass(frozen=True)
class Row:
    """A valid row, ready to upsert."""

    psid: str
    first_name: str | None
    last_name: str | None
    last_inbound_at: datetime | None
    tags: list[str]


@dataclass
class Batch:
    """The next rows of the file: the valid ones, the refused ones, and where reading stands."""

    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    read: int = 0  # non-blank rows read in this batch, valid or not
    bytes_read: int = 0  # of the whole file so far
    done: bool = False


def check_utf8(stream: IO[bytes]) -> None:
    """Read the whole file once; anything but UTF-8 (a BOM is fine) is refused with where it broke."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = lines = 0
    while chunk := stream.read(1 << 20):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            at = max(exc.start, 0)
            line = lines + chunk[:at].count(b"\n") + 1
            raise InvalidInput(
                f"The file is not UTF-8 text: byte 0x{chunk[at]:02X} on line {line} (byte "
                f"{offset + at + 1:,}) cannot be read. Save it as UTF-8 (in Excel: “CSV UTF-8”) "
                "and import it again.",
                field="file",
            ) from exc
        offset += len(chunk)
        lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "The file is not UTF-8 text: it ends in the middle of a character. Save it as "
            "UTF-8 (in Excel: “CSV UTF-8”) and import it again.",
            field="file",
        ) from exc


class CsvReader:
    """Reads a CSV file of contacts `size` rows at a time (blocking: run it in a thread).

    Opening reads the header and refuses, with `InvalidInput`, a file that is empty or has no
    `psid` column. Call `check_utf8` first: the reader assumes the file decodes.
    """

    def __init__(self, source: Path | bytes, *, max_tags: int) -> None:
        self._raw: IO[bytes] = (
            io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
        )
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._text)
        self._max_tags = max_tags
        self._seen: dict[str, int] = {}
        self._number = 1  # row 1 is the header, as in a spreadsheet
        try:
            header = [h.strip().lower() for h in self._next_cells() or []]
        except Exception:
            self.close()
            raise
        if not header or not any(header):
            self.close()
            raise InvalidInput(
                "The CSV is empty; the first line must name the columns (psid, …).", field="file"
            )
        if "psid" not in header:
            self.close()
            raise InvalidInput(
                "The CSV has no `psid` column. The first line must name the columns: "
                f"psid (required), {', '.join(COLUMNS[1:])}.",
                field="psid",
            )
        self.ignored_columns = [h for h in header if h not in COLUMNS]
        self._index = {name: header.index(name) for name in COLUMNS if name in header}

    def _next_cells(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as exc:
            raise InvalidInput(
                f"Row {self._reader.line_num} cannot be read as CSV ({exc}); the rows before "
                "it were imported. Fix that row and import the file again (importing a row "
                "twice changes nothing).",
                field="file",
            ) from exc

    def next_batch(self, size: int) -> Batch:
        """The next `size` non-blank rows (fewer at the end of the file)."""
        batch = Batch()
        while batch.read < size:
            cells = self._next_cells()
            if cells is None:
                batch.done = True
                break
            self._number += 1
            if not any(c.strip() for c in cells):
                continue
            batch.read += 1
            values = {
                name: (cells[i].strip() if i < len(cells) else "")
                for name, i in self._index.items()
            }
            checked = self._check(values)
            if isinstance(checked, RowError):
                batch.errors.append(checked)
            else:
                self._seen[checked.psid] = self._number
                batch.rows.append(checked)
        batch.bytes_read = self._raw.tell()
        return batch

    def _check(self, values: dict[str, str]) -> Row | RowError:
        number = self._number

        def refuse(column: str, reason: str) -> RowError:
            return RowError(number, column, reason)

        psid = values["psid"]
        if not psid:
            return refuse("psid", "is empty; every row needs the person's Page-scoped id")
        if not _PSID.match(psid):
            return refuse(
                "psid", f"{psid[:40]!r} is not a Page-scoped id (digits only, at most 64)"
            )
        if psid in self._seen:
            return refuse("psid", f"{psid} already appears on row {self._seen[psid]}")
        for name, limit in _LIMITS.items():
            if len(values.get(name, "")) > limit:
                return refuse(name, f"is {len(values[name]):,} characters; at most {limit}")
        cell = values.get("tags", "")
        tags = [t for t in (t.strip() for t in cell.split(";")) if t]
        if len(tags) > self._max_tags:
            return refuse(
                "tags",
                f"has {len(tags):,} tags; a contact may have at most {self._max_tags} "
                "(PAGECAST_IMPORT_MAX_TAGS_PER_CONTACT)",
            )
        for tag in tags:
            if len(tag) > _MAX_TAG:
                return refuse("tags", f"a tag is {len(tag):,} characters; at most {_MAX_TAG}")
        seen_at = None
        if values.get("last_inbound_at"):
            try:
                seen_at = _parse_time(values["last_inbound_at"])
            except ValueError as exc:
                return refuse(
                    "last_inbound_at",
                    f"{values['last_inbound_at'][:40]!r} {exc}; use ISO 8601, e.g. "
                    "2026-11-20T14:05:00Z",
                )
        return Row(
            psid=psid,
            first_name=values.get("first_name") or None,
            last_name=values.get("last_name") or None,
            last_inbound_at=seen_at,
            tags=list(dict.fromkeys(tags)),
        )

    def close(self) -> None:
        self._text.close()


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if parsed > utcnow() + timedelta(minutes=5):
        raise ValueError("is in the future")
    return parsed


# ------------------------------------------------------------------------------ writing


async def upsert(session: AsyncSession, page_id: int, rows: list[Row]) -> tuple[int, int]:
    """Create or update the batch's contacts and add their tags; returns (created, updated)."""
    if not rows:
        return 0, 0
    now = utcnow()
    if session.bind.dialect.name == "postgresql":
        result = await session.execute(
            _PG_UPSERT,
            {
                "page_id": page_id,
                "now": now,
                "psids": [r.psid for r in rows],
                "first": [r.first_name for r in rows],
                "last": [r.last_name for r in rows],
                "seen": [r.last_inbound_at for r in rows],
            },
        )
        ids, created = {}, 0
        for psid, contact_id, inserted in result:
            ids[psid] = contact_id
            created += bool(inserted)
    else:
        values = [
            {
                "psid": r.psid,
                "first_name": r.first_name,
                "last_name": r.last_name,
                "last_inbound_at": r.last_inbound_at,
                "page_id": page_id,
                "created_at": now,
                "updated_at": now,
            }
            for r in rows
        ]
        # executemany with RETURNING: SQLAlchemy batches it into multi-row statements
        # ("insertmanyvalues"), compiled once. A row created now carries this batch's time.
        table = Contact.__table__
        result = await session.execute(
            _upsert_statement(session).returning(table.c.psid, table.c.id, table.c.created_at),
            values,
        )
        ids, created = {}, 0
        for psid, contact_id, created_at in result:
            ids[psid] = contact_id
            created += created_at == now
    pairs = [(ids[r.psid], tag) for r in rows for tag in r.tags]
    if pairs and session.bind.dialect.name == "postgresql":
        tag_ids = await contacts.ensure_tags(session, {tag for _, tag in pairs})
        await session.execute(
            _PG_TAG,
            {"contacts": [c for c, _ in pairs], "tags": [tag_ids[t] for _, t in pairs]},
        )
    elif pairs:
        await contacts.add_tags(session, pairs)
    return created, len(rows) - created


def _upsert_statement(session: AsyncSession) -> Any:
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


# PostgreSQL: the batch as arrays, one statement with five parameters (`unnest`), rather than
# a multi-row VALUES list of 7 parameters a row: about twice the rows per second (P8).
# `xmax = 0` tells the rows this statement inserted from those it updated.
_PG_UPSERT = text(
    """
    INSERT INTO contacts (page_id, psid, first_name, last_name, last_inbound_at,
                          created_at, updated_at)
    SELECT :page_id, u.psid, u.first_name, u.last_name, u.seen, :now, :now
    FROM unnest(CAST(:psids AS varchar[]), CAST(:first AS varchar[]),
                CAST(:last AS varchar[]), CAST(:seen AS timestamptz[]))
         AS u(psid, first_name, last_name, seen)
    ON CONFLICT (page_id, psid) DO UPDATE SET
        first_name = coalesce(excluded.first_name, contacts.first_name),
        last_name = coalesce(excluded.last_name, contacts.last_name),
        last_inbound_at = CASE
            WHEN contacts.last_inbound_at IS NULL
                 OR excluded.last_inbound_at > contacts.last_inbound_at
            THEN excluded.last_inbound_at ELSE contacts.last_inbound_at END,
        updated_at = excluded.updated_at
    RETURNING psid, id, (xmax = 0) AS inserted
    """
)
_PG_TAG = text(
    """
    INSERT INTO contact_tags (contact_id, tag_id)
    SELECT * FROM unnest(CAST(:contacts AS integer[]), CAST(:tags AS integer[]))
    ON CONFLICT DO NOTHING
    """
)
