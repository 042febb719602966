"""The outbound events of a Page that stopped being able to send (issue 22):
`page.token_invalid` (its token was revoked or expired: reconnect it) and `page.restricted`
(Facebook restricted or blocked it).

`status_changed` is called by whatever sets a Page's status (`sending.stop_page`, and a new
token on a Page Facebook still blocks: `pages`), after the change and in its transaction; it
emits only when the status became one of those two, so a stop per failed send, or a second
stop of a stopped Page, emits nothing more.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import OutboundEvent, Page, PageStatus
from pagecast.services import outbound_events

__all__ = ["status_changed"]

_EVENTS = {
    PageStatus.TOKEN_INVALID: "page.token_invalid",
    PageStatus.RESTRICTED: "page.restricted",
}


async def status_changed(
    session: AsyncSession, page: Page, was: PageStatus
) -> OutboundEvent | None:
    """Emit the event of the Page's new status, if it changed to one that has an event."""
    event_type = _EVENTS.get(page.status)
    if event_type is None or page.status is was:
        return None
    data = {
        "page_id": page.id,
        "fb_page_id": page.fb_page_id,
        "name": page.name,
        "status": page.status.value,
        "previous_status": was.value,
        "reason": page.status_reason,
    }
    return await outbound_events.emit(session, event_type, data)
