"""What the audit API answers (issue 22), for the OpenAPI document (`_Out`: no undocumented
key)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pagecast.web.openapi import AuditOut, _Out, errors

__all__ = ["AuditPage", "listed"]


class AuditPage(_Out):
    """One page of the audit log, newest first (docs/api.md, "Audit log")."""

    items: list[AuditOut]
    next_cursor: str | None = Field(
        description="Give it as `cursor` for the older entries; null on the last page."
    )


def listed(*statuses: int) -> dict[str, Any]:
    """Route keyword arguments of `GET /api/audit`: JSON, or CSV with `Accept: text/csv`."""
    success: dict[str, Any] = {
        "description": "The entries; with `Accept: text/csv` or `format=csv`, all of them as a "
        "CSV file.",
        "model": AuditPage,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    return {
        "status_code": 200,
        "response_model": None,
        "responses": {200: success, **errors(*statuses)},
    }
