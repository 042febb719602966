"""What the contacts list, its tags and its bulk actions answer, for the OpenAPI document
(issue 21). Beside `web/openapi.py`; the same rules hold (render builds, these describe)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pagecast.web.openapi import ContactOut, _Out, errors

__all__ = ["BulkOut", "ContactPageOut", "TagCountList", "listed"]


class ContactPageOut(_Out):
    items: list[ContactOut]
    total: int = Field(description="How many contacts match the filters (all pages).")
    next_cursor: str | None = Field(description="`cursor` for the next page; null on the last.")
    prev_cursor: str | None = Field(description="`cursor` for the page before; null on the first.")


class TagCountOut(_Out):
    name: str
    contacts: int = Field(description="How many of the Page's contacts have the tag.")


class TagCountList(_Out):
    items: list[TagCountOut]


class BulkOut(_Out):
    changed: int = Field(
        description="Contacts changed (those that already had the tag, had not, or had "
        "opted out are not counted)."
    )


def listed(*statuses: int) -> dict[str, Any]:
    """Route keyword arguments of the list: JSON, or with `Accept: text/csv` every matching
    contact as CSV."""
    success: dict[str, Any] = {
        "description": "A page of contacts; with `Accept: text/csv`, all matching ones as CSV.",
        "model": ContactPageOut,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    return {
        "status_code": 200,
        "response_model": None,
        "responses": {200: success, **errors(*statuses)},
    }
