"""Where a command's reads and actions go: this machine's database, or a remote Pagecast.

`Local` calls the services and actions the API calls; `Remote` (`pagecast --url URL --token
T`) calls the API itself. Both answer with the API's JSON bodies, so each command is written
once over those bodies and `--json` prints the same fields either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from pagecast.errors import InvalidInput, PagecastError, ServiceUnavailable, Unauthorized

__all__ = ["Backend", "Local", "Remote", "RemoteError", "use"]

T = TypeVar("T")


class Backend(Protocol):
    async def campaigns(
        self,
        *,
        status: str | None,
        page_id: int | None,
        search: str | None = None,
        archived: bool = False,
    ) -> list[dict[str, Any]]: ...
    async def campaign(self, campaign_id: int) -> dict[str, Any]: ...
    async def create_campaign(self, body: dict[str, Any]) -> dict[str, Any]: ...
    async def update_campaign(self, campaign_id: int, body: dict[str, Any]) -> dict[str, Any]: ...
    async def act(self, campaign_id: int, action: str) -> dict[str, Any]: ...
    async def decide(
        self, campaign_id: int, decision: str, comment: str | None, as_email: str | None
    ) -> dict[str, Any]: ...
    async def delete_campaign(self, campaign_id: int) -> None: ...
    async def pages(self) -> list[dict[str, Any]]: ...
    async def tokens(self) -> list[dict[str, Any]]: ...


class RemoteError(PagecastError):
    """The remote Pagecast refused a request: its error, as its API said it."""


def _validated(model: Any, body: dict[str, Any]) -> Any:
    """The body as the API's model, or the API's 422 in one line (field and what is wrong)."""
    from pydantic import ValidationError

    from pagecast.errors import field_path, in_words

    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(
            f"{field_path(error['loc'])}: {in_words(error)}", field=field_path(error["loc"])
        ) from exc


class Local:
    """This machine's database (and its Redis for the actions that enqueue)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def campaigns(
        self,
        *,
        status: str | None,
        page_id: int | None,
        search: str | None = None,
        archived: bool = False,
    ) -> list[dict[str, Any]]:
        from pagecast.models import CampaignStatus
        from pagecast.services import campaigns
        from pagecast.web import render

        wanted = _validated_status(status, CampaignStatus)
        async with self.ctx.db.reading() as session:
            rows = await campaigns.list_page(
                session,
                status=wanted,
                page_id=page_id,
                search=search or None,
                archived=archived,
                limit=200,
            )
            return [render.campaign(c, campaigns.counts(c)) for c in rows]

    async def campaign(self, campaign_id: int) -> dict[str, Any]:
        from pagecast.web import progress

        return await progress.read(self.ctx, campaign_id)

    async def create_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        from pagecast.cli.base import cli_actor
        from pagecast.schemas import CampaignCreate
        from pagecast.services import campaigns
        from pagecast.web import render

        data = _validated(CampaignCreate, body)
        async with self.ctx.db.transaction() as session:
            campaign = await campaigns.create(session, cli_actor(), data)
            return render.campaign(campaign, campaigns.counts(campaign))

    async def update_campaign(self, campaign_id: int, body: dict[str, Any]) -> dict[str, Any]:
        from pagecast.cli.base import cli_actor
        from pagecast.schemas import CampaignUpdate
        from pagecast.services import campaigns
        from pagecast.web import render

        data = _validated(CampaignUpdate, body)
        async with self.ctx.db.transaction() as session:
            campaign = await campaigns.update(session, cli_actor(), campaign_id, data)
            return render.campaign(campaign, campaigns.counts(campaign))

    async def act(self, campaign_id: int, action: str) -> dict[str, Any]:
        from pagecast import actions
        from pagecast.cli.base import cli_actor
        from pagecast.services import campaigns
        from pagecast.web import render

        if action == "duplicate":
            async with self.ctx.db.transaction() as session:
                copy = await campaigns.duplicate(session, cli_actor(), campaign_id)
                return render.campaign(copy, campaigns.counts(copy))
        if action in ("archive", "unarchive"):
            from pagecast.services import campaign_archive

            async with self.ctx.db.transaction() as session:
                done = await getattr(campaign_archive, action)(session, cli_actor(), campaign_id)
                return render.campaign(done, campaigns.counts(done))
        retried = None
        if action == "retry-failed":
            campaign, retried = await self._with_redis(
                lambda: actions.retry_failed(self.ctx, cli_actor(), campaign_id)
            )
        elif action in ("start", "resume", "schedule"):
            campaign = await self._with_redis(
                lambda: getattr(actions, action)(self.ctx, cli_actor(), campaign_id)
            )
        else:
            campaign = await getattr(actions, action)(self.ctx, cli_actor(), campaign_id)
        body = render.campaign(campaign, campaigns.counts(campaign))
        return body if retried is None else body | {"retried": retried}

    async def decide(
        self, campaign_id: int, decision: str, comment: str | None, as_email: str | None
    ) -> dict[str, Any]:
        """Approve or reject (issue 22) as the CLI, or as the user `as_email`."""
        from pagecast import actions
        from pagecast.cli.base import cli_actor
        from pagecast.schemas import ApproveBody, RejectBody
        from pagecast.services import campaigns, users
        from pagecast.web import render

        given = {"comment": comment} if comment is not None else {}
        body = _validated(RejectBody if decision == "reject" else ApproveBody, given)
        actor = cli_actor()
        if as_email is not None:
            async with self.ctx.db.reading() as session:
                user = await users.get_by_email(session, as_email)
            if not user.is_active:
                raise InvalidInput(f"--as: {user.email} is deactivated.", field="as")
            actor = users.actor_for(user)
        if decision == "reject":
            campaign = await actions.reject(self.ctx, actor, campaign_id, body.comment)
        else:
            campaign = await self._with_redis(
                lambda: actions.approve(self.ctx, actor, campaign_id, body.comment)
            )
        return render.campaign(campaign, campaigns.counts(campaign))

    async def delete_campaign(self, campaign_id: int) -> None:
        from pagecast.cli.base import cli_actor
        from pagecast.services import campaigns

        async with self.ctx.db.transaction() as session:
            await campaigns.delete(session, cli_actor(), campaign_id)

    async def pages(self) -> list[dict[str, Any]]:
        from pagecast.services import pages
        from pagecast.web import render

        async with self.ctx.db.reading() as session:
            return [render.page(p) for p in await pages.list_all(session)]

    async def tokens(self) -> list[dict[str, Any]]:
        from pagecast.cli.base import cli_actor
        from pagecast.services import tokens
        from pagecast.web import render

        async with self.ctx.db.reading() as session:
            return [render.token(t) for t in await tokens.list_for(session, cli_actor())]

    async def _with_redis(self, work: Callable[[], Awaitable[T]]) -> T:
        from pagecast.cli.data import with_redis

        return await with_redis(self.ctx, work)


def _validated_status(status: str | None, kind: Any) -> Any:
    if status is None:
        return None
    try:
        return kind(status)
    except ValueError:
        raise InvalidInput(
            f"--status: {status!r} is not a campaign status; use one of "
            f"{', '.join(s.value for s in kind)}.",
            field="status",
        ) from None


class Remote:
    """A Pagecast server, over its API with an API token."""

    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"Pagecast at {self.url} did not answer ({type(exc).__name__}: {exc}). Check "
                "--url and that `pagecast serve` runs there."
            ) from exc
        if response.status_code == 401:
            raise Unauthorized(
                f"Pagecast at {self.url} refused the token (401). Create one there with "
                "`pagecast tokens create --user EMAIL` and pass it with --token or PAGECAST_TOKEN."
            )
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message, field = str(error["message"]), error.get("field")
            except (ValueError, KeyError, TypeError):
                raise self._not_pagecast(response) from None
            failure = RemoteError(message, field=field)
            failure.status_code = response.status_code
            raise failure
        if response.is_redirect:
            raise self._not_pagecast(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._not_pagecast(response) from None

    def _not_pagecast(self, response: Any) -> ServiceUnavailable:
        """An answer without Pagecast's JSON (a web page, a proxy's error): one line that
        says so, never the page itself."""
        where = response.headers.get("location")
        moved = f"; it points to {where}: give that address as --url" if where else ""
        return ServiceUnavailable(
            f"{self.url} answered {response.request.method} {response.request.url.path} with "
            f"HTTP {response.status_code} and no Pagecast API body{moved}. Check that --url is "
            "the address of a Pagecast server."
        )

    async def campaigns(
        self,
        *,
        status: str | None,
        page_id: int | None,
        search: str | None = None,
        archived: bool = False,
    ) -> list[dict[str, Any]]:
        given = (("status", status), ("page_id", page_id), ("q", search or None))
        params: dict[str, Any] = {k: v for k, v in given if v is not None}
        params |= {"archived": "true"} if archived else {}
        body = await self._call("GET", "/api/campaigns", params=params | {"limit": 200})
        return list(body["items"])

    async def campaign(self, campaign_id: int) -> dict[str, Any]:
        return dict(await self._call("GET", f"/api/campaigns/{campaign_id}"))

    async def create_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("POST", "/api/campaigns", json=body))

    async def update_campaign(self, campaign_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("PATCH", f"/api/campaigns/{campaign_id}", json=body))

    async def act(self, campaign_id: int, action: str) -> dict[str, Any]:
        return dict(await self._call("POST", f"/api/campaigns/{campaign_id}/{action}"))

    async def decide(
        self, campaign_id: int, decision: str, comment: str | None, as_email: str | None
    ) -> dict[str, Any]:
        if as_email is not None:
            raise InvalidInput(
                "--as works on this machine's database only; with --url the token's user decides.",
                field="as",
            )
        body = {"comment": comment} if comment is not None else {}
        return dict(await self._call("POST", f"/api/campaigns/{campaign_id}/{decision}", json=body))

    async def delete_campaign(self, campaign_id: int) -> None:
        await self._call("DELETE", f"/api/campaigns/{campaign_id}")

    async def pages(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/api/pages"))["items"])

    async def tokens(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/api/tokens"))["items"])


def use(work: Callable[[Backend], Awaitable[T]]) -> T:
    """Run `work` on the backend the options chose: `--url` (remote) or this machine."""
    from pagecast.cli.base import fail, run, state

    url, token = state["url"], state["token"]
    if url is None:
        return run(lambda ctx: work(Local(ctx)))
    if not token:
        fail("--url needs an API token: pass --token, or set PAGECAST_TOKEN.")

    async def remote() -> T:
        backend = Remote(url, token)
        try:
            return await work(backend)
        finally:
            await backend.close()

    try:
        return asyncio.run(remote())
    except PagecastError as exc:
        if state["debug"]:
            raise
        fail(exc.cli_message)
    except Exception as exc:  # an answer of an unexpected shape: one line, as `run` does
        if state["debug"]:
            raise
        fail(f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")
