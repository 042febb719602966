"""Request bodies of Graph calls: JSON, form-encoded or multipart, where every form value may
be a JSON-encoded string (`recipient={"id":"..."}`) (docs/simulator.md, "Requests and answers").

Multipart file parts (the Attachment Upload API's `filedata`, a batch's attached files) are
kept as `FilePart`s; nothing is written to disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["FilePart", "decode_params", "decode_value", "parse_multipart"]


@dataclass(frozen=True, slots=True)
class FilePart:
    """One uploaded file of a multipart body."""

    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


def decode_value(value: str) -> Any:
    """A form value, JSON-decoded when it looks like JSON (`{`, `[` or `"` first)."""
    if value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def decode_params(body: bytes, content_type: str) -> dict[str, Any]:
    """A JSON object body, or a form / multipart body whose JSON-looking values are decoded."""
    if not body:
        return {}
    if "json" in content_type or (not content_type and body[:1] in (b"{", b"[")):
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return {}
        if isinstance(value, list):
            return {"batch": value}
        return value if isinstance(value, dict) else {}
    if content_type.startswith("multipart/"):
        return parse_multipart(body, content_type)
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {key: decode_value(value) for key, value in pairs}


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="a"; filename="b.png"` as ("form-data", {"name": "a", ...})."""
    main, *rest = value.split(";")
    params = {}
    for item in rest:
        key, _, raw = item.strip().partition("=")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"')
        params[key.strip().lower()] = raw
    return main.strip().lower(), params


def parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """`multipart/form-data`: text fields (JSON-decoded when they look like JSON) and files.

    A malformed body (no boundary, no parts) gives `{}`, so the call fails on the missing
    parameters like any other incomplete request.
    """
    boundary = _header_params(content_type)[1].get("boundary")
    if not boundary:
        return {}
    params: dict[str, Any] = {}
    delimiter = b"--" + boundary.encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition, part_type = "", "text/plain"
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
            elif name.strip().lower() == "content-type":
                part_type = value.strip()
        _, attrs = _header_params(disposition)
        field = attrs.get("name")
        if not field:
            continue
        if "filename" in attrs:
            params[field] = FilePart(attrs["filename"], part_type, data)
            continue
        try:
            params[field] = decode_value(data.decode("utf-8"))
        except UnicodeDecodeError:
            params[field] = FilePart("", part_type, data)
    return params
