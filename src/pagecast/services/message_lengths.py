"""A campaign's messages against Messenger's length limit once personalised: the API field
that names each message, and the longest names of a Page's contacts they must fit (the
names are read only when the widest possible names would not fit)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.errors import InvalidInput
from pagecast.message_schema import Content
from pagecast.models import Contact
from pagecast.services import content

__all__ = [
    "check_messages_length",
    "check_rendered_length",
    "fits_any_name",
    "longest_names",
    "message_field",
    "name_length_columns",
    "names_of",
]


def message_field(index: int, count: int) -> str:
    """The API field that holds message `index` of `count`: `content` for a single one."""
    return "content" if count == 1 else f"messages[{index}]"


async def check_messages_length(
    session: AsyncSession,
    messages: Sequence[Content],
    page_id: int,
    fields: Sequence[str] | None = None,
) -> None:
    """`check_rendered_length` for each message, naming the message that is too long (its
    field in `fields`, else `content` or `messages[i]`)."""
    if all(fits_any_name(session, m) for m in messages):
        return
    longest = await longest_names(session, page_id)
    for index, message in enumerate(messages):
        field = fields[index] if fields else message_field(index, len(messages))
        content.check_length(message, longest, field=field)


def names_of(first: int | None, last: int | None) -> dict[str, int]:
    """The longest value of each personalisation variable, from the longest first and last
    names (`content.check_length` takes this mapping)."""
    first, last = first or 0, last or 0
    return {"first_name": first, "last_name": last, "full_name": first + last + 1}


def name_length_columns() -> tuple[Any, Any]:
    """The aggregates `longest_names` selects (for callers that fold them into a scan)."""
    return func.max(func.length(Contact.first_name)), func.max(func.length(Contact.last_name))


async def longest_names(session: AsyncSession, page_id: int) -> dict[str, int]:
    first, last = (
        await session.execute(select(*name_length_columns()).where(Contact.page_id == page_id))
    ).one()
    return names_of(first, last)


def _width(column: Any) -> int:
    length = column.property.columns[0].type.length
    assert length is not None, f"{column} has no declared width"
    return int(length)


def fits_any_name(session: AsyncSession, message: Content) -> bool:
    """Whether `message` fits Messenger's limit whatever names the contacts have, so that
    `longest_names` (a scan of every contact of the Page) can be skipped.

    The bound is the width of the name columns, which PostgreSQL enforces; SQLite does not
    enforce VARCHAR lengths, so there the names are always read.
    """
    if session.get_bind().dialect.name != "postgresql":
        return False
    widest = names_of(_width(Contact.first_name), _width(Contact.last_name))
    try:
        content.check_length(message, widest)
    except InvalidInput:
        return False
    return True


async def check_rendered_length(session: AsyncSession, message: Content, page_id: int) -> None:
    """Refuse text that could exceed Messenger's limit once personalised for a contact of
    the Page; reads the names only when the widest possible names would not fit."""
    if not fits_any_name(session, message):
        content.check_length(message, await longest_names(session, page_id))
