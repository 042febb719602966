"""Upload media once per Page (the Attachment Upload API) and reuse its `attachment_id`,
shared by the API and the dashboard's composer ("upload once")."""

from __future__ import annotations

from pydantic import ValidationError

from pagecast.context import AppContext
from pagecast.errors import InvalidInput, UpstreamError, field_path, in_words
from pagecast.graph import ErrorKind, GraphError, PageCredentials
from pagecast.message_schema import AttachmentUpload
from pagecast.permissions import Actor
from pagecast.services import attachments, audit, pages

__all__ = ["upload_attachment"]

_UNFETCHABLE = (2018008, 2018047, 2018109, 2018294)


async def upload_attachment(
    ctx: AppContext, actor: Actor, page_id: int, kind: str, url: str
) -> tuple[str, bool]:
    """The Page's `attachment_id` for (kind, url) and whether it was uploaded now: a URL
    uploaded before is answered from the database without calling Facebook. `kind` and `url`
    are checked here (`AttachmentUpload`), whoever passes them: API, CLI or dashboard.

    Raises:
        NotFound: no such Page.
        InvalidInput: not a media type or not a public https:// URL (field `type` or `url`), or
            Facebook could not fetch or accept the file (field `url`).
        UpstreamError: Facebook refused the Page's token or could not be reached.
    """
    try:
        body = AttachmentUpload.model_validate({"type": kind, "url": url})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = field_path(error["loc"])
        raise InvalidInput(f"{where}: {in_words(error)}", field=where) from None
    kind, url = body.type, body.url
    async with ctx.db.transaction() as session:
        page = await pages.get(session, page_id)
        known = await attachments.find(session, page.id, kind, url)
        if known is not None:
            return known, False
        token, secret = pages.credentials(ctx.vault, page)
    creds = PageCredentials(token, ctx.app_secret_for(secret))
    try:
        attachment_id = await ctx.graph.upload_attachment(creds, kind=kind, url=url)
    except GraphError as exc:
        if exc.subcode in _UNFETCHABLE or exc.kind is ErrorKind.BAD_REQUEST:
            raise InvalidInput(
                f"url: Facebook could not upload this {kind}: {exc.message} (code "
                f"{exc.code_text}). Check that the URL is public HTTPS and the file is within "
                "Messenger's limits (25 MB, images 8 MB).",
                field="url",
            ) from exc
        raise UpstreamError(
            f"Could not upload the {kind} through the Graph API ({exc.kind.value}: "
            f"{exc.message}). Try again in a minute.",
            field="url",
        ) from exc
    async with ctx.db.transaction() as session:
        kept = await attachments.remember(session, page_id, kind, url, attachment_id)
        await audit.record(
            session,
            actor,
            "attachment.uploaded",
            object_type="page",
            object_id=page_id,
            details={"type": kind, "url": url, "attachment_id": kept},
        )
    return kept, True
