"""Contacts of a Page: tags and time zone of the ticked ones, testers, CSV imports with live
progress and a per-row report, the audience sync; the list itself is `contact_list`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from pagecast import timezones
from pagecast.errors import InvalidInput
from pagecast.permissions import Permission
from pagecast.schemas import ContactUpdate, Id, parse_id
from pagecast.services import contacts, import_jobs, page_syncs, pages
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect, same_site_path
from pagecast.web.deps import ContextDep
from pagecast.web.uploads import store_upload

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
PAGE_SIZE = 100


@router.post("/contacts/tags")
async def bulk_tags(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Add and/or remove tags on the chosen contacts, and/or set their time zone."""
    viewer.actor.require(Permission.CONTACTS_WRITE)
    form = await request.form()
    ids = [i for v in form.getlist("contact_id") if isinstance(v, str) and (i := parse_id(v))]
    add = {t.strip() for t in str(form.get("add", "")).split(",") if t.strip()}
    remove = {t.strip() for t in str(form.get("remove", "")).split(",") if t.strip()}
    zone = _zone_change(str(form.get("timezone", "")))
    if not ids:
        raise InvalidInput("Tick at least one contact first.", field="contact_id")
    async with ctx.db.transaction() as session:
        for contact_id in ids:
            contact = await contacts.get(session, contact_id)
            names = ({t.name for t in contact.tags} | add) - remove
            await contacts.update(
                session,
                viewer.actor,
                contact_id,
                ContactUpdate.model_validate({"tags": sorted(names)} | zone),
            )
    return redirect(same_site_path(str(form.get("back") or ""), "/contacts"))


def _zone_change(typed: str) -> dict[str, str | None]:
    """The form's time zone for the chosen contacts (issue 20): nothing when left empty,
    "-" for none (the profile's offset, else the Page's zone); an unknown name is refused
    naming the field, with a suggestion."""
    typed = typed.strip()
    if not typed:
        return {}
    if typed == "-":
        return {"timezone": None}
    known = timezones.canonical(typed)
    if known is None:
        raise InvalidInput(f"timezone: {timezones.unknown_message(typed)}", field="timezone")
    return {"timezone": known}


@router.post("/contacts/{contact_id}/tester")
async def toggle_tester(
    contact_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """Make a contact a tester of its Page (`is_tester=on`) or stop it being one (`off`)."""
    viewer.actor.require(Permission.CONTACTS_WRITE)
    form = await request.form()
    wanted = {"on": True, "off": False}.get(str(form.get("is_tester", "")))
    if wanted is None:
        raise InvalidInput("is_tester: send on or off.", field="is_tester")
    async with ctx.db.transaction() as session:
        contact = await contacts.update(
            session, viewer.actor, contact_id, ContactUpdate(is_tester=wanted)
        )
    back = same_site_path(str(form.get("back") or ""), f"/contacts?page_id={contact.page_id}")
    return redirect(back)


@router.post("/contacts/import")
async def import_csv(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Store the upload and start the import in the background; the answer shows its
    progress, which polls itself until the import has ended."""
    viewer.actor.require(Permission.CONTACTS_WRITE)
    # Cached (the CSRF check read it); leaving the block removes its spooled files.
    async with request.form(max_files=1, max_fields=20) as form:
        page_id = parse_id(str(form.get("page_id", "")))
        if page_id is None:
            raise InvalidInput("Choose the Page to import into.", field="page_id")
        if not isinstance(form.get("file"), UploadFile):
            raise InvalidInput("Choose a CSV file to import.", field="file")
        async with ctx.db.reading() as session:
            await pages.get(session, page_id)
        stored = await store_upload(
            request, ctx.imports.new_upload_path(), max_bytes=ctx.settings.import_max_bytes
        )
    job = await ctx.imports.start(viewer.actor, page_id, stored.path, file_name=stored.name)
    if request.headers.get("hx-request"):
        return page(request, "_import.html", viewer, job=import_jobs.report(job))
    return redirect(f"/contacts/imports/{job.id}")


@router.get("/contacts/imports/{import_id}")
async def import_status(
    import_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """An import's progress (HTMX: the card alone, polling itself while it runs), then its
    report with the refused rows."""
    viewer.actor.require(Permission.CONTACTS_READ)
    async with ctx.db.reading() as session:
        job = import_jobs.report(await import_jobs.get(session, import_id))
    if request.headers.get("hx-request"):
        return page(request, "_import.html", viewer, job=job)
    return page(request, "import.html", viewer, job=job)


@router.post("/contacts/sync")
async def start_sync(request: Request, viewer: ViewerDep, ctx: ContextDep) -> Response:
    """Sync the Page's audience from its conversations (as POST /api/pages/{id}/sync)."""
    viewer.actor.require(Permission.CONTACTS_WRITE)
    page_id = parse_id(str((await request.form()).get("page_id", "")))
    if page_id is None:
        raise InvalidInput("Choose the Page to sync.", field="page_id")
    await ctx.syncs.start(viewer.actor, page_id)
    return await sync_status(page_id, request, viewer, ctx)


@router.get("/contacts/sync/{page_id}")
async def sync_status(
    page_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """HTMX: the Page's latest sync; polls itself while the sync runs."""
    viewer.actor.require(Permission.CONTACTS_READ)
    async with ctx.db.transaction() as session:
        await pages.get(session, page_id)
        sync = await page_syncs.latest(session, page_id)
    return page(
        request,
        "_sync.html",
        viewer,
        page_id=page_id,
        sync=page_syncs.report(sync) if sync is not None else None,
    )
