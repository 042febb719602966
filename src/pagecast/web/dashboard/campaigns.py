"""Campaign list, campaign detail (live progress, errors, audit) and its actions; the
deliveries table is web/dashboard/deliveries.py.

Actions call `pagecast.actions` / `services.campaigns`, exactly as the API and the CLI do;
the page hides buttons a role may not use, and the server checks the permission anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from pagecast import actions, tester_sends, timezones
from pagecast.context import AppContext
from pagecast.errors import NotFound, PagecastError
from pagecast.models import CampaignStatus, DeliveryStatus, utcnow
from pagecast.permissions import Actor, Permission
from pagecast.schemas import TESTERS_PER_SEND, Id, Line, parse_id
from pagecast.services import (
    audience,
    audit,
    campaign_archive,
    campaigns,
    due_plan,
    engagement,
    experiments,
    pages,
    reports,
    retry_rule,
    review,
    sending,
    testers,
)
from pagecast.web import charts, render
from pagecast.web.dashboard import approvals, explain, times
from pagecast.web.dashboard.base import DashboardRoute, ViewerDep, page, redirect
from pagecast.web.deps import ContextDep

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

# Which buttons a campaign in a state shows: (action, label, confirmation question).
_ACTIONS: dict[CampaignStatus, list[tuple[str, str, str]]] = {
    CampaignStatus.DRAFT: [("start", "Start sending", "Start sending this campaign now?")],
    CampaignStatus.AWAITING_APPROVAL: [
        ("cancel", "Cancel", "Cancel the campaign? Its approval request is withdrawn."),
    ],
    CampaignStatus.SCHEDULED: [
        ("start", "Send now", "Start sending this campaign now, before its time?"),
        ("cancel", "Cancel", "Cancel the scheduled campaign?"),
    ],
    CampaignStatus.SENDING: [
        ("pause", "Pause", "Pause sending? Messages in flight finish."),
        ("cancel", "Cancel", "Cancel the campaign? Pending messages are never sent."),
    ],
    CampaignStatus.PAUSED: [
        ("resume", "Resume", "Resume sending?"),
        ("cancel", "Cancel", "Cancel the campaign? Pending messages are never sent."),
    ],
}
_SEND_ACTIONS = {"start", "schedule", "pause", "resume", "cancel", "retry-failed", "winner"}
# Issue 21: the campaign list's buttons (a refusal is the error page: they act on one row).
_LIST_ACTIONS: dict[str, Callable[[AsyncSession, Actor, int], Awaitable[Any]]] = {
    "archive": campaign_archive.archive,
    "unarchive": campaign_archive.unarchive,
    "delete": campaigns.delete,
}
_WRITE_ACTIONS = {"duplicate", *_LIST_ACTIONS}


def summary(campaign: Any) -> dict[str, Any]:
    """Counts, percentages and rates for the templates (the same numbers the API gives)."""
    counts = campaigns.counts(campaign)
    total = counts["total"]
    done = total - counts["pending"] - counts["sending"]
    reached = counts["sent"] + counts["delivered"] + counts["read"]
    delivered = counts["delivered"] + counts["read"]
    return {
        "counts": counts,
        "percent": round(100 * done / total) if total else 0,
        "reached": reached,
        "delivered_rate": round(100 * delivered / reached) if reached else 0,
        "read_rate": round(100 * counts["read"] / reached) if reached else 0,
    }


def _schedule_passed(campaign: Any) -> bool:
    """A draft whose time has come: it can no longer be scheduled for it."""
    at = campaign.scheduled_at
    return campaign.status is CampaignStatus.DRAFT and at is not None and at <= utcnow()


def over_time_chart(over: reports.OverTime | None, zone: str) -> Markup | None:
    """Sends, deliveries and reads over time, with axes in the viewer's zone."""
    if over is None:
        return None
    short = over.width_seconds * len(over.starts) < 86_400
    labels = [
        timezones.to_local(at, zone).strftime("%H:%M:%S" if short else "%m-%d %H:%M")
        for at in over.starts
    ]
    return charts.line_chart(
        labels,
        [("sent", over.sent), ("delivered", over.delivered), ("read", over.read)],
        x_title=f"Time ({zone})",
        y_title="Messages",
        title="Messages sent, delivered and read over time",
        chart_id="over-time-chart",
    )


def allowed_actions(
    viewer: Any, campaign: Any, eligible: int | None = None, retryable: int = 0
) -> list[tuple[str, str, str]]:
    """The buttons the viewer may use; with `eligible` (the review's count now), Start and
    Schedule ask with the number ("Send to 488 people now?"); `retryable` is how many failed
    deliveries a retry can cure (services/retry_rule.py): Retry is offered for those only."""
    shown: list[tuple[str, str, str]] = []
    if viewer.can(Permission.CAMPAIGNS_SEND):
        at = campaign.scheduled_at
        if campaign.status is CampaignStatus.DRAFT and at is not None and at > utcnow():
            when = times.text(at, times.viewer_zone(viewer), seconds=False)
            question = f"Start by itself at {when}?"
            if eligible is not None:
                question = f"Schedule for {review.people(eligible)} at {when}?"
            shown.append(("schedule", f"Schedule for {when}", question))
        for action, label, question in _ACTIONS.get(campaign.status, []):
            if action == "start" and eligible is not None:
                question = f"Send to {review.people(eligible)} now?"
            shown.append((action, label, question))
        if retryable and campaign.status in (
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
            CampaignStatus.COMPLETED,
        ):
            shown.append(
                (
                    "retry-failed",
                    f"Retry {retryable} failed",
                    "Send again the failed messages a retry can cure?",
                )
            )
    if viewer.can(Permission.CAMPAIGNS_WRITE):
        shown.append(("duplicate", "Duplicate", "Make a new draft copy of this campaign?"))
    return shown


@router.get("/campaigns")
async def campaign_list(
    request: Request,
    viewer: ViewerDep,
    ctx: ContextDep,
    status: str | None = None,
    page_id: str | None = None,
    q: Line | None = None,
    archived: str | None = None,
) -> Response:
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    wanted = CampaignStatus(status) if status in set(CampaignStatus) else None
    page_filter = parse_id(page_id)
    show_archived = archived == "yes"
    async with ctx.db.transaction() as session:
        rows = await campaigns.list_page(
            session,
            status=wanted,
            page_id=page_filter,
            search=(q or "")[:200] or None,
            archived=show_archived,
            limit=200,
        )
        page_rows = {p.id: p for p in await pages.list_all(session)}
    return page(
        request,
        "campaigns.html",
        viewer,
        items=[(c, summary(c), page_rows.get(c.page_id)) for c in rows],
        pages=list(page_rows.values()),
        statuses=[s.value for s in CampaignStatus],
        filters={
            "status": status or "",
            "page_id": page_filter,
            "q": q or "",
            "archived": show_archived,
        },
        archivable=[s.value for s in campaign_archive.ARCHIVABLE],
    )


async def _detail_context(ctx: Any, viewer: Any, campaign_id: int) -> dict[str, Any]:
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    async with ctx.db.transaction() as session:
        campaign = await campaigns.get(session, campaign_id)
        page_row = await pages.get(session, campaign.page_id)
        rate, until = await campaigns.pace(session, campaign, ctx.settings.unknown_grace)
        groups = await reports.error_groups(session, campaign.id)
        trail = await audit.list_for(session, object_type="campaign", object_id=campaign.id)
        over = await reports.over_time(session, campaign.id)
        retryable = await retry_rule.count(session, campaign.id)
        engaged = await engagement.counts(session, campaign.id)
        waiting = await due_plan.count_waiting(session, campaign, utcnow())
        # Issue 22: an approver reviews what approval would send.
        before = campaign.status in (*sending.STARTABLE, *sending.APPROVED)
        warnings = (
            await audience.tag_warnings(session, campaign.page_id, campaign.audience)
            if before
            else []
        )
        # The review: what Start would do now (drafts and scheduled campaigns).
        found = await review.get(session, campaign.id) if before else None
        tester_rows = (
            await testers.list_for_page(session, campaign.page_id)
            if campaign.status in testers.TESTABLE and viewer.can(Permission.CAMPAIGNS_SEND)
            else None
        )
        experiment = await experiments.report(session, campaign)  # A/B: by variant
    shown = allowed_actions(viewer, campaign, found.preview.eligible if found else None, retryable)
    if found is not None:  # issue 22: Start and Schedule say when they ask for approval
        shown = approvals.asking(shown, page_row.approval_threshold, found.preview.eligible)
    return {
        "campaign": campaign,
        "page_row": page_row,
        "page_help": explain.page_status(page_row.status.value),
        "s": summary(campaign),
        "engagement": engaged,
        "progress": render.progress(campaign, rate, page_row.send_rate, reconciling_until=until)
        | {"waiting": render.waiting(*waiting, campaign.last_due_at)},
        "errors": [
            (g, *explain.delivery_error(g.code, g.subcode, g.kind, g.reason)) for g in groups
        ],
        "warnings": warnings,
        "audit": trail,
        "over_time": over_time_chart(over, times.viewer_zone(viewer)),
        "retryable": retryable,
        "actions": shown,
        "retry_offered": any(action == "retry-failed" for action, _, _ in shown),
        "review": found,
        "testers": tester_rows,
        "schedule_passed": _schedule_passed(campaign),
        "editable": campaign.status in campaigns.EDITABLE
        and viewer.can(Permission.CAMPAIGNS_WRITE),
        "experiment": experiment,
        "approval": approvals.panel(viewer.actor, campaign),
    }


@router.get("/campaigns/{campaign_id}")
async def campaign_detail(
    campaign_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    context = await _detail_context(ctx, viewer, campaign_id)
    async with ctx.db.transaction() as session:
        messages = await campaigns.effective_messages(session, context["campaign"])
    return page(
        request,
        "campaign.html",
        viewer,
        statuses=[s.value for s in DeliveryStatus],
        messages=messages,
        from_template=context["campaign"].template_id is not None,
        **context,
    )


@router.get("/campaigns/{campaign_id}/panel")
async def campaign_panel(
    campaign_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """The part of the detail page that changes with the campaign's state (HTMX refresh)."""
    return page(
        request, "_campaign_panel.html", viewer, **await _detail_context(ctx, viewer, campaign_id)
    )


@router.get("/campaigns/{campaign_id}/reports")
async def campaign_reports(
    campaign_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """The charts, the outcomes and the errors of the detail page (dashboard.js reloads
    them while the counts change, so no number there stays old)."""
    viewer.actor.require(Permission.CAMPAIGNS_READ)
    async with ctx.db.reading() as session:
        campaign = await campaigns.get(session, campaign_id)
        groups = await reports.error_groups(session, campaign.id)
        over = await reports.over_time(session, campaign.id)
        retryable = await retry_rule.count(session, campaign.id)
    return page(
        request,
        "_campaign_reports.html",
        viewer,
        campaign=campaign,
        s=summary(campaign),
        over_time=over_time_chart(over, times.viewer_zone(viewer)),
        retryable=retryable,
        errors=[(g, *explain.delivery_error(g.code, g.subcode, g.kind, g.reason)) for g in groups],
    )


@router.post("/campaigns/{campaign_id}/test")
async def send_test(
    campaign_id: Id, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """Send the campaign's test to the ticked testers; the results (HTMX: only them)."""
    viewer.actor.require(Permission.CAMPAIGNS_SEND)
    form = await request.form()
    ids = [i for v in form.getlist("contact_id") if isinstance(v, str) and (i := parse_id(v))]
    problem = None
    status_code = 200
    results: list[testers.Result] = []
    if not ids:
        problem, status_code = "Tick at least one tester to send the test to.", 422
    elif len(ids) > TESTERS_PER_SEND:
        problem, status_code = f"Tick at most {TESTERS_PER_SEND} testers at once.", 422
    else:
        try:
            results = await tester_sends.send_tests(ctx, viewer.actor, campaign_id, ids)
        except PagecastError as exc:
            if exc.status_code in (401, 403, 404):
                raise
            # The refusal's own status: 409 (the campaign's or Page's state), 503 (Redis).
            problem, status_code = exc.message, exc.status_code
    async with ctx.db.transaction() as session:
        named = await testers.names(session, [r.contact_id for r in results])
    fragment: dict[str, Any] = {
        "test_results": results,
        "test_names": named,
        "test_problem": problem,
    }
    if request.headers.get("hx-request"):  # dashboard.js shows an error's fragment too
        return page(request, "_test_results.html", viewer, status_code=status_code, **fragment)
    context = await _detail_context(ctx, viewer, campaign_id)
    return page(
        request,
        "campaign.html",
        viewer,
        status_code=status_code,
        statuses=[s.value for s in DeliveryStatus],
        **fragment,
        **context,
    )


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(
    campaign_id: Id, action: str, request: Request, viewer: ViewerDep, ctx: ContextDep
) -> Response:
    """start, schedule, pause, resume, cancel, retry-failed (campaigns:send); duplicate,
    archive, unarchive and delete (campaigns:write; from the list, back to it)."""
    actor = viewer.actor
    if action in approvals.DECISIONS:  # issue 22: approve, reject (campaigns:approve)
        actor.require(Permission.CAMPAIGNS_APPROVE)
    else:
        actor.require(
            Permission.CAMPAIGNS_WRITE if action in _WRITE_ACTIONS else Permission.CAMPAIGNS_SEND
        )
    if action == "duplicate":
        async with ctx.db.transaction() as session:
            copy = await campaigns.duplicate(session, actor, campaign_id)
        return redirect(f"/campaigns/{copy.id}/edit")
    if action in _LIST_ACTIONS:
        async with ctx.db.transaction() as session:
            await _LIST_ACTIONS[action](session, actor, campaign_id)
        back = str((await request.form()).get("back", ""))
        return redirect(back if back.startswith("/campaigns") else "/campaigns")
    if action not in _SEND_ACTIONS and action not in approvals.DECISIONS:
        raise NotFound(f"Unknown campaign action {action!r}.")
    try:
        if action in approvals.DECISIONS:
            await approvals.decide(ctx, actor, campaign_id, action, await request.form())
        else:
            form = await request.form()
            await _act(ctx, actor, action, campaign_id, str(form.get("key", "")))
    except PagecastError as exc:
        if exc.status_code in (401, 403, 404):
            raise
        # A refusal (nobody eligible, Redis down, a state that forbids it): the campaign's
        # own page, with the reason and the navigation, not a dead-end error page.
        context = await _detail_context(ctx, viewer, campaign_id)
        return page(
            request,
            "campaign.html",
            viewer,
            status_code=exc.status_code,
            statuses=[s.value for s in DeliveryStatus],
            refusal=exc.message,
            **context,
        )
    return redirect(f"/campaigns/{campaign_id}")


async def _act(ctx: AppContext, actor: Actor, action: str, campaign_id: int, key: str = "") -> None:
    if action == "winner":  # an A/B experiment's winner, picked by hand (`key`)
        await actions.pick_winner(ctx, actor, campaign_id, key.strip())
    elif action == "start":
        await actions.start(ctx, actor, campaign_id)
    elif action == "schedule":
        await actions.schedule(ctx, actor, campaign_id)
    elif action == "pause":
        await actions.pause(ctx, actor, campaign_id)
    elif action == "resume":
        await actions.resume(ctx, actor, campaign_id)
    elif action == "cancel":
        await actions.cancel(ctx, actor, campaign_id)
    else:
        await actions.retry_failed(ctx, actor, campaign_id)
