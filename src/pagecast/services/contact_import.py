"""CSV import of contacts: the file read in batches of rows, valid rows upserted in bulk.

Columns: `psid` (required), `first_name`, `last_name`, `tags` (semicolon-separated),
`last_inbound_at` (ISO 8601; without a timezone it is read as UTC) and `timezone` (the
person's IANA zone, e.g. Asia/Manila: their local time for local-time sends, issue 20;
services/due_times.py). An existing contact keeps
the values an empty cell leaves out, keeps its tags (new ones are added) and keeps the later
of the two `last_inbound_at`.

Columns are separated by commas, semicolons (what Excel writes where the decimal mark is a
comma) or tabs: `csv.Sniffer` guesses from the start of the file, and the header decides
(`detect_delimiter`).

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
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast import timezones
from pagecast.errors import InvalidInput
from pagecast.models import utcnow
from pagecast.services import contacts

__all__ = [
    "COLUMNS",
    "DELIMITERS",
    "MAX_ERRORS_LISTED",
    "Batch",
    "CsvReader",
    "Row",
    "RowError",
    "check_utf8",
    "detect_delimiter",
    "upsert",
]

COLUMNS = ("psid", "first_name", "last_name", "tags", "last_inbound_at", "timezone")
MAX_ERRORS_LISTED = 1000
_PSID = re.compile(r"^\d{1,64}$")
_MAX_NAME = 255
# In a thread, the reader holds the GIL for up to Python's switch interval (5 ms) whenever
# the event loop's thread asks for it; giving it up every 100 rows (about 0.7 ms of work)
# keeps the loop's requests from queueing behind the parse.
_YIELD_EVERY = 100
_MAX_TAG = 100
# A last message up to this far ahead of our clock is the sender's clock, not the future.
_CLOCK_SKEW = timedelta(minutes=5)
# A line of many megabytes must become a row error, not a csv.Error that ends the import;
# the file's size cap (settings.import_max_bytes) bounds it.
csv.field_size_limit(2**31 - 1)
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
# The Sniffer reads this much of the file's start; it is slow on large samples.
_SNIFF_BYTES = 16 * 1024


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str


class Row(NamedTuple):
    """A valid row, ready to upsert."""

    psid: str
    first_name: str | None
    last_name: str | None
    last_inbound_at: datetime | None
    tags: list[str]
    timezone: str | None = None


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


def detect_delimiter(sample: bytes) -> str:
    """The delimiter (one of `DELIMITERS`) of a CSV file that starts with `sample`.

    `csv.Sniffer`, restricted to the three, makes the first guess; the guess is kept only if
    the header it splits names a `psid` column, else the first delimiter that does is taken
    (column names hold no delimiter; the Sniffer finds none in rows with cells left off,
    which the import pads). Comma when nothing tells.
    """
    text = sample.decode("utf-8-sig", errors="ignore")
    if len(sample) >= _SNIFF_BYTES and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # a cut row would mislead the Sniffer
    try:
        sniffed: str | None = csv.Sniffer().sniff(text, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:  # "Could not determine delimiter": one column, or too few rows
        sniffed = None
    line = text.partition("\n")[0].rstrip("\r")
    for candidate in ([sniffed] if sniffed else []) + list(DELIMITERS):
        try:
            header = next(csv.reader([line], delimiter=candidate), [])
        except csv.Error:  # the reader reports it with the row's number
            continue
        if "psid" in (cell.strip().lower() for cell in header):
            return candidate
    return sniffed or ","


class CsvReader:
    """Reads a CSV file of contacts `size` rows at a time (blocking: run it in a thread).

    Opening detects the delimiter (`detect_delimiter`, kept in `delimiter`), reads the header
    and refuses, with `InvalidInput`, a file that is empty or has no
    `psid` column. Call `check_utf8` first: the reader assumes the file decodes.
    """

    def __init__(self, source: Path | bytes, *, max_tags: int) -> None:
        self._raw: IO[bytes] = (
            io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
        )
        try:
            self.delimiter = detect_delimiter(self._raw.read(_SNIFF_BYTES))
            self._raw.seek(0)
        except Exception:
            self._raw.close()
            raise
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._text, delimiter=self.delimiter)
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
                "The CSV has no `psid` column. The first line must name the columns, "
                "separated by commas, semicolons or tabs: "
                f"psid (required), {', '.join(COLUMNS[1:])}.",
                field="psid",
            )
        self.ignored_columns = [h for h in header if h not in COLUMNS]
        self._columns = tuple(header.index(c) if c in header else -1 for c in COLUMNS)
        self._width = len(header)

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
        latest = utcnow() + _CLOCK_SKEW  # a later last_inbound_at is in the future
        # Per-row work is the import's CPU cost (P8): indexes are resolved once, and a row
        # is checked in one function without building a dict.
        psid_at, first_at, last_at, tags_at, seen_at, zone_at = self._columns
        width = self._width
        while batch.read < size:
            cells = self._next_cells()
            if cells is None:
                batch.done = True
                break
            self._number += 1
            if len(cells) < width:
                cells += [""] * (width - len(cells))
            psid = cells[psid_at].strip()
            if not psid and not "".join(cells).strip():
                continue
            batch.read += 1
            if not batch.read % _YIELD_EVERY:
                time.sleep(0)  # hands the GIL over: the event loop waits for it at most this long
            checked = self._check(
                psid,
                cells[first_at].strip() if first_at >= 0 else "",
                cells[last_at].strip() if last_at >= 0 else "",
                cells[tags_at] if tags_at >= 0 else "",
                cells[seen_at].strip() if seen_at >= 0 else "",
                latest,
                cells[zone_at].strip() if zone_at >= 0 else "",
            )
            if isinstance(checked, RowError):
                batch.errors.append(checked)
            else:
                self._seen[checked.psid] = self._number
                batch.rows.append(checked)
        batch.bytes_read = self._raw.tell()
        return batch

    def _check(
        self,
        psid: str,
        first: str,
        last: str,
        tag_cell: str,
        seen: str,
        latest: datetime,
        zone: str = "",
    ) -> Row | RowError:
        number = self._number
        if not psid:
            return RowError(number, "psid", "is empty; every row needs the person's Page-scoped id")
        if not _PSID.match(psid):
            return RowError(
                number, "psid", f"{psid[:40]!r} is not a Page-scoped id (digits only, at most 64)"
            )
        if psid in self._seen:
            return RowError(number, "psid", f"{psid} already appears on row {self._seen[psid]}")
        if len(first) > _MAX_NAME or len(last) > _MAX_NAME:
            name, value = ("first_name", first) if len(first) > _MAX_NAME else ("last_name", last)
            return RowError(number, name, f"is {len(value):,} characters; at most {_MAX_NAME}")
        tags: list[str] = []
        if tag_cell:
            tags = [t.strip() for t in tag_cell.split(";")]
            if "" in tags:
                tags = [t for t in tags if t]
            if len(tags) > self._max_tags:
                return RowError(
                    number,
                    "tags",
                    f"has {len(tags):,} tags; a contact may have at most {self._max_tags} "
                    "(PAGECAST_IMPORT_MAX_TAGS_PER_CONTACT)",
                )
            for tag in tags:
                if len(tag) > _MAX_TAG:
                    return RowError(
                        number, "tags", f"a tag is {len(tag):,} characters; at most {_MAX_TAG}"
                    )
            if len(tags) > 1:
                tags = list(dict.fromkeys(tags))
        when = None
        if seen:
            try:
                when = _parse_time(seen, latest)
            except ValueError as exc:
                return RowError(
                    number,
                    "last_inbound_at",
                    f"{seen[:40]!r} {exc}; use ISO 8601, e.g. 2026-11-20T14:05:00Z",
                )
        known_zone = None
        if zone:
            known_zone = timezones.canonical(zone)
            if known_zone is None:
                return RowError(number, "timezone", timezones.unknown_message(zone))
        return Row(psid, first or None, last or None, when, tags, known_zone)

    def close(self) -> None:
        self._text.close()


def _parse_time(value: str, latest: datetime) -> datetime:
    parsed = datetime.fromisoformat(value)  # Python 3.11+ reads a trailing Z
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if parsed > latest:
        raise ValueError("is in the future")
    return parsed


# ------------------------------------------------------------------------------ writing


async def upsert(session: AsyncSession, page_id: int, rows: list[Row]) -> tuple[int, int]:
    """Create or update the batch's contacts and add their tags; returns (created, updated)."""
    if not rows:
        return 0, 0
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        return await _pg_upsert(session, page_id, rows, now)
    return await _sqlite_upsert(session, page_id, rows, now)


# SQLite: the batch goes into temporary tables with the driver's executemany (its loop runs
# in the driver's thread, not on the event loop), and set-based statements merge it. Building
# SQLAlchemy's multi-row statements, with a type conversion per value, held the event loop
# for tens of milliseconds a batch. Times are written as SQLAlchemy writes them
# (`UTCDateTime`: naive UTC text), so that comparisons with stored values hold.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_SQLITE_STEPS = (
    "CREATE TEMP TABLE IF NOT EXISTS import_rows "
    "(psid TEXT PRIMARY KEY, first_name TEXT, last_name TEXT, seen TEXT, timezone TEXT)",
    "CREATE TEMP TABLE IF NOT EXISTS import_tags (psid TEXT, tag TEXT)",
    "DELETE FROM import_rows",
    "DELETE FROM import_tags",
)
# A known contact keeps what the file leaves empty and its newest inbound time (both backends).
_KNOWN_CONTACT = """
    ON CONFLICT (page_id, psid) DO UPDATE SET
        first_name = coalesce(excluded.first_name, contacts.first_name),
        last_name = coalesce(excluded.last_name, contacts.last_name),
        timezone = coalesce(excluded.timezone, contacts.timezone),
        last_inbound_at = CASE
            WHEN contacts.last_inbound_at IS NULL
                 OR excluded.last_inbound_at > contacts.last_inbound_at
            THEN excluded.last_inbound_at ELSE contacts.last_inbound_at END,
        updated_at = excluded.updated_at
"""
_SQLITE_MERGE = (
    """
    INSERT INTO contacts (page_id, psid, first_name, last_name, last_inbound_at, timezone,
                          created_at, updated_at)
    SELECT ?, psid, first_name, last_name, seen, timezone, ?, ? FROM import_rows WHERE true
    """
    + _KNOWN_CONTACT
)


async def _sqlite_upsert(
    session: AsyncSession, page_id: int, rows: list[Row], now: datetime
) -> tuple[int, int]:
    conn = await session.connection()
    for step in _SQLITE_STEPS:
        await conn.exec_driver_sql(step)
    await conn.exec_driver_sql(
        "INSERT INTO import_rows VALUES (?, ?, ?, ?, ?)",
        [
            (
                r.psid,
                r.first_name,
                r.last_name,
                r.last_inbound_at.strftime(_SQLITE_TIME) if r.last_inbound_at else None,
                r.timezone,
            )
            for r in rows
        ],
    )
    known = (
        await conn.exec_driver_sql(
            "SELECT count(*) FROM import_rows r JOIN contacts c ON c.page_id = ? AND c.psid = r.psid",
            (page_id,),
        )
    ).scalar_one()
    stamp = now.astimezone(UTC).replace(tzinfo=None).strftime(_SQLITE_TIME)
    await conn.exec_driver_sql(_SQLITE_MERGE, (page_id, stamp, stamp))
    tagged = [(r.psid, tag) for r in rows for tag in r.tags]
    if tagged:
        await conn.exec_driver_sql("INSERT INTO import_tags VALUES (?, ?)", tagged)
        await conn.exec_driver_sql(
            "INSERT OR IGNORE INTO tags (name) SELECT DISTINCT tag FROM import_tags"
        )
        await conn.exec_driver_sql(
            "INSERT OR IGNORE INTO contact_tags (contact_id, tag_id) "
            "SELECT c.id, t.id FROM import_tags i "
            "JOIN contacts c ON c.page_id = ? AND c.psid = i.psid JOIN tags t ON t.name = i.tag",
            (page_id,),
        )
    return len(rows) - int(known), int(known)


async def _pg_upsert(
    session: AsyncSession, page_id: int, rows: list[Row], now: datetime
) -> tuple[int, int]:
    names = {tag for r in rows for tag in r.tags}
    tag_ids = await contacts.ensure_tags(session, names) if names else {}
    tagged = [(r.psid, tag_ids[tag]) for r in rows for tag in r.tags]
    created, total = (
        await session.execute(
            _PG_UPSERT,
            {
                "page_id": page_id,
                "now": now,
                "psids": [r.psid for r in rows],
                "first": [r.first_name for r in rows],
                "last": [r.last_name for r in rows],
                "seen": [r.last_inbound_at for r in rows],
                "zones": [r.timezone for r in rows],
                "tag_psids": [psid for psid, _ in tagged],
                "tag_ids": [tag_id for _, tag_id in tagged],
            },
        )
    ).one()
    return int(created), int(total) - int(created)


# PostgreSQL: the batch as arrays (`unnest`), contacts and their tags in one statement
# whose answer is two counts, rather than a multi-row VALUES list of 7 parameters a row
# and the rows back into Python: about twice the rows per second (P8). `xmax = 0` tells the
# rows this statement inserted from those it updated.
_PG_UPSERT = text(
    """
    WITH up AS (
        INSERT INTO contacts (page_id, psid, first_name, last_name, last_inbound_at,
                              timezone, created_at, updated_at)
        SELECT :page_id, u.psid, u.first_name, u.last_name, u.seen, u.zone, :now, :now
        FROM unnest(CAST(:psids AS varchar[]), CAST(:first AS varchar[]),
                    CAST(:last AS varchar[]), CAST(:seen AS timestamptz[]),
                    CAST(:zones AS varchar[]))
             AS u(psid, first_name, last_name, seen, zone)
    """
    + _KNOWN_CONTACT
    + """
        RETURNING id, psid, (xmax = 0) AS inserted
    ), tagged AS (
        INSERT INTO contact_tags (contact_id, tag_id)
        SELECT up.id, t.tag_id
        FROM unnest(CAST(:tag_psids AS varchar[]), CAST(:tag_ids AS integer[]))
             AS t(psid, tag_id)
        JOIN up ON up.psid = t.psid
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) FILTER (WHERE inserted), count(*) FROM up
    """
)
