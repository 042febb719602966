"""Uploaded files (a contact import's CSV) written to disk as they arrive, never held in memory.

A body is either the file itself (`text/csv`, any non-form type) or a multipart form with the
file in the field `file` (the dashboard's form, `curl -F file=@contacts.csv`). Either way it
is written to `path` with mode 0600, and refused with 413 as soon as it is known to be larger
than the limit: a declared `Content-Length` before anything is read, a streamed body when it
passes the limit. Copying from the form's spooled file runs in a thread.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fastapi import Request
from starlette.datastructures import UploadFile

from pagecast.errors import InvalidInput, PayloadTooLarge

__all__ = ["FORM_OVERHEAD", "Stored", "store_upload"]

# Room for a multipart body's boundaries and other fields around the file itself.
FORM_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class Stored:
    path: Path
    name: str
    size: int


def _too_large(limit: int, size: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is too large: {size} is over the {limit:,}-byte limit "
        "(PAGECAST_IMPORT_MAX_BYTES). Split it into smaller files and import each.",
        field="file",
    )


def _create(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


async def store_upload(request: Request, path: Path, *, max_bytes: int) -> Stored:
    """Write the request's file to `path` (0600); raises `PayloadTooLarge` or `InvalidInput`."""
    is_form = request.headers.get("content-type", "").startswith("multipart/form-data")
    declared = request.headers.get("content-length", "")
    slack = FORM_OVERHEAD if is_form else 0
    if declared.isdigit() and int(declared) > max_bytes + slack:
        raise _too_large(max_bytes, f"Content-Length {int(declared):,}")
    try:
        if is_form:
            stored = await _from_form(request, path, max_bytes)
        else:
            stored = await _from_body(request, path, max_bytes)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if stored.size == 0:
        path.unlink(missing_ok=True)
        raise InvalidInput(
            "The CSV is empty; the first line must name the columns (psid, …).", field="file"
        )
    return stored


async def _from_body(request: Request, path: Path, max_bytes: int) -> Stored:
    size = 0
    with _create(path) as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes, f"the body (more than {size:,} bytes read)")
            out.write(chunk)
    return Stored(path, "upload.csv", size)


async def _from_form(request: Request, path: Path, max_bytes: int) -> Stored:
    # Parsed once per request (Starlette caches it); closing it removes its spooled files.
    async with request.form(max_files=1, max_fields=20) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("Send the CSV as a multipart field named `file`.", field="file")
        source = upload.file

        def copy() -> int:
            source.seek(0)
            with _create(path) as out:
                shutil.copyfileobj(source, out, 1 << 20)
                return out.tell()

        size = await asyncio.to_thread(copy)
    if size > max_bytes:
        raise _too_large(max_bytes, f"{size:,} bytes")
    return Stored(path, Path(upload.filename or "upload.csv").name, size)
