"""`GraphClient`: Send API, batch sends, `/me`, Conversations, User Profile and Facebook
Login's calls over one shared pool.

Every failure, whatever the response or the transport did, leaves as a `GraphError`.
Tokens travel in the `Authorization: Bearer` header (or, inside a batch, in each
operation's body), never in a URL, so no request log line can show them. The exceptions
are Facebook Login's token endpoint and `debug_token`, whose API takes the app secret, the
code and the token being inspected in the query: the transport never logs a query, and
those values are scrubbed from every error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from pagecast.graph import wire
from pagecast.graph.errors import ErrorKind, GraphError, error_from_body
from pagecast.graph.login import LOGIN_SCOPES, LoginCalls
from pagecast.graph.models import (
    BatchMessage,
    Conversation,
    ConversationPage,
    PageIdentity,
    SendResult,
    UserProfile,
)
from pagecast.graph.security import PageCredentials
from pagecast.graph.transport import GraphHttp, may_have_left
from pagecast.graph.usage import Usage

__all__ = [
    "DEFAULT_CONVERSATION_FIELDS",
    "DEFAULT_PROFILE_FIELDS",
    "LOGIN_SCOPES",
    "WEBHOOK_FIELDS",
    "GraphClient",
    "make_http_client",
]

logger = logging.getLogger(__name__)

DEFAULT_CONVERSATION_FIELDS = (
    "id,updated_time,participants,message_count,unread_count,"
    "messages.limit(10){id,message,from,to,created_time}"
)
DEFAULT_PROFILE_FIELDS = "first_name,last_name,profile_pic,name"
WEBHOOK_FIELDS = (
    "messages",
    "messaging_postbacks",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "messaging_optins",
    "messaging_referrals",
    "messaging_policy_enforcement",
)


def _unknown_person(error: GraphError) -> None:
    """On a profile lookup, 100/33 names a PSID Graph does not know: the person, not the Page."""
    if (error.code, error.subcode) == (100, 33):
        error.kind = ErrorKind.RECIPIENT_UNREACHABLE


def _segment(graph_id: str) -> str:
    """An id as one path segment: a PSID or Page id with `/`, `?` or `#` in it (ids come
    from webhooks and files) cannot reach another Graph path; an empty id, `.` and `..`
    (which a server resolves to another path) are refused before any request."""
    if graph_id in ("", ".", ".."):
        raise GraphError(f"{graph_id!r} is not a Graph id", kind=ErrorKind.BAD_REQUEST)
    return quote(graph_id, safe="")


# The process-wide keep-alive pool for Graph calls (no connection until the first request);
# the caller owns it and closes it.
make_http_client = GraphHttp


class GraphClient(LoginCalls):
    """Graph API calls for many Pages through one `GraphHttp` pool; credentials come per call."""

    def __init__(self, http: GraphHttp, *, version: str = "v25.0") -> None:
        self._http = http
        self._version = version.strip("/")

    # ----------------------------------------------------------------------------- sends

    async def send_message(
        self,
        creds: PageCredentials,
        *,
        psid: str,
        message: Mapping[str, Any],
        messaging_type: str = "UPDATE",
        tag: str | None = None,
        metadata: str | None = None,
        notification_type: str | None = None,
        on_sent: Callable[[], None] | None = None,
        not_before: float | None = None,
    ) -> SendResult:
        """Send one message (Messenger's `message` object, built by the caller) to a PSID.

        `metadata` goes into `message.metadata` and comes back in the `message_echoes` webhook.
        `on_sent` is called once the request has been written to the connection (Graph has it
        from then on), before the answer. With `not_before` (on `time.monotonic()`'s clock)
        the request is built and its connection taken, and it is written no earlier.

        Raises:
            GraphError: for every failure; `kind` says what to do.
        """
        body = wire.send_body(
            psid,
            message,
            messaging_type=messaging_type,
            tag=tag,
            metadata=metadata,
            notification_type=notification_type,
        )
        data, usage = await self._call(
            creds,
            "POST",
            "me/messages",
            json_body=body,
            idempotent=False,
            on_sent=on_sent,
            not_before=not_before,
        )
        return wire.send_result(data, usage, context="POST me/messages")

    async def send_sender_action(
        self, creds: PageCredentials, *, psid: str, action: str
    ) -> SendResult:
        """`typing_on`, `typing_off` or `mark_seen` (each one counts toward the rate limits)."""
        body = {"recipient": {"id": psid}, "sender_action": action}
        data, usage = await self._call(
            creds, "POST", "me/messages", json_body=body, idempotent=False
        )
        return wire.send_result(data, usage, context="POST me/messages")

    async def send_batch(
        self,
        creds: PageCredentials,
        messages: Sequence[BatchMessage],
        *,
        on_sent: Callable[[], None] | None = None,
        not_before: float | None = None,
    ) -> list[SendResult | GraphError]:
        """Send up to 50 messages of one Page in one request; one result per message, in order.

        A `null` element of Graph's answer (the operation timed out) becomes an `ambiguous`
        `GraphError`. More than 50 messages get Graph's whole-request error (100). `on_sent`
        and `not_before` as for `send_message`.

        Raises:
            GraphError: when the whole batch fails (bad token, too many operations, transport).
        """
        proof = creds.appsecret_proof
        relative_url = f"{self._version}/me/messages"
        if proof:  # a per-operation proof goes into that operation's relative_url
            relative_url += "?" + urlencode({"appsecret_proof": proof})
        operations = [
            {
                "method": "POST",
                "relative_url": relative_url,
                # Each operation carries its own token in its body (docs/graph-api.md,
                # "Graph batch requests").
                "body": urlencode(
                    {
                        key: value if isinstance(value, str) else json.dumps(value)
                        for key, value in {
                            **wire.send_body(
                                m.psid,
                                m.message,
                                messaging_type=m.messaging_type,
                                tag=m.tag,
                                metadata=m.metadata,
                                notification_type=m.notification_type,
                            ),
                            "access_token": creds.access_token,
                        }.items()
                    }
                ),
            }
            for m in messages
        ]
        # A JSON body: the operations' bodies are URL-encoded once each, and the
        # request itself is not URL-encoded a second time around them.
        data, usage = await self._call(
            creds,
            "POST",
            "",
            json_body={"batch": operations, "include_headers": True},
            idempotent=False,
            root=True,
            on_sent=on_sent,
            not_before=not_before,
        )
        if not isinstance(data, list):
            raise wire.bad_answer("POST batch", usage, idempotent=False, detail="not a JSON array")
        return [
            wire.batch_item(
                data[i] if i < len(data) else None, usage, index=i, redact=creds.secrets()
            )
            for i in range(len(messages))
        ]

    # ----------------------------------------------------------------------------- reads

    async def get_me(self, creds: PageCredentials) -> PageIdentity:
        """`GET /me?fields=id,name`: the Page (or user) that owns the token."""
        data, usage = await self._call(creds, "GET", "me", params={"fields": "id,name"})
        if not isinstance(data, dict) or not isinstance(data.get("id"), str | int):
            raise wire.bad_answer("GET me", usage, idempotent=True, detail="no id")
        name = data.get("name")
        return PageIdentity(
            id=str(data["id"]), name=name if isinstance(name, str) else None, usage=usage
        )

    async def get_profile(
        self, creds: PageCredentials, psid: str, *, fields: str = DEFAULT_PROFILE_FIELDS
    ) -> UserProfile:
        """User Profile API. `GraphError.profile_unavailable` marks 2018218/2018247 (fall back to no name).

        An unknown PSID (100/33 on this call) is `recipient_unreachable`, not `stop_page`.
        """
        data, usage = await self._call(
            creds, "GET", _segment(psid), params={"fields": fields}, refine=_unknown_person
        )
        try:
            profile = UserProfile.model_validate(
                {"id": psid, **data} if isinstance(data, dict) else None
            )
        except ValueError as exc:
            raise wire.bad_answer(
                f"GET {psid}", usage, idempotent=True, detail="not a profile"
            ) from exc
        return profile.model_copy(update={"usage": usage})

    async def conversation_pages(
        self,
        creds: PageCredentials,
        page_id: str,
        *,
        fields: str = DEFAULT_CONVERSATION_FIELDS,
        limit: int = 100,
        platform: str = "messenger",
        after: str | None = None,
    ) -> AsyncGenerator[ConversationPage, None]:
        """Every page of `GET /{page_id}/conversations`, following `paging.next` until it is absent.

        `after` resumes from a page's `after_cursor` (after a failed call, say).
        """
        path = f"{_segment(page_id)}/conversations"
        params: dict[str, str] = {"platform": platform, "fields": fields, "limit": str(limit)}
        if after is not None:
            params["after"] = after
        seen_cursors: set[str] = set()
        while True:
            data, usage = await self._call(creds, "GET", path, params=params)
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise wire.bad_answer(f"GET {path}", usage, idempotent=True, detail="no data array")
            try:
                threads = tuple(
                    Conversation.from_graph(item, page_id)
                    for item in data["data"]
                    if isinstance(item, dict)
                )
            except ValueError as exc:
                raise wire.bad_answer(
                    f"GET {path}", usage, idempotent=True, detail="bad thread"
                ) from exc
            paging = data.get("paging")
            next_url = paging.get("next") if isinstance(paging, dict) else None
            next_url = next_url if isinstance(next_url, str) and next_url else None
            yield ConversationPage(conversations=threads, next_url=next_url, usage=usage)
            if next_url is None or next_url in seen_cursors:
                return
            seen_cursors.add(next_url)
            # Follow `next` for its query only: the real one repeats the access token and
            # may name another host (docs/graph-api.md, "Conversations and profiles"); our
            # path, host and header stay.
            params = {
                k: v for k, v in parse_qsl(urlsplit(next_url).query) if k not in wire.AUTH_PARAMS
            }

    async def iter_conversations(
        self,
        creds: PageCredentials,
        page_id: str,
        *,
        fields: str = DEFAULT_CONVERSATION_FIELDS,
        limit: int = 100,
    ) -> AsyncIterator[Conversation]:
        """All Messenger threads of the Page, newest first, each thread once.

        Threads updated while paging can show up on two pages; the later copy is dropped.
        """
        seen: set[str] = set()
        async for page in self.conversation_pages(creds, page_id, fields=fields, limit=limit):
            for thread in page.conversations:
                if thread.id not in seen:
                    seen.add(thread.id)
                    yield thread

    # ----------------------------------------------------------------------------- attachments

    async def upload_attachment(self, creds: PageCredentials, *, kind: str, url: str) -> str:
        """`POST /me/message_attachments`: Facebook fetches `url` once and answers an
        `attachment_id` that Sends of the Page can reuse (docs/graph-api.md, "Media attachments").

        Raises:
            GraphError: for every failure (2018008: the URL could not be fetched).
        """
        body = {
            "message": {"attachment": {"type": kind, "payload": {"url": url, "is_reusable": True}}}
        }
        data, usage = await self._call(creds, "POST", "me/message_attachments", json_body=body)
        found = data.get("attachment_id") if isinstance(data, dict) else None
        if not isinstance(found, str | int) or isinstance(found, bool) or str(found) == "":
            raise wire.bad_answer(
                "POST me/message_attachments", usage, idempotent=True, detail="no attachment_id"
            )
        return str(found)

    # ----------------------------------------------------------------------------- webhooks

    async def subscribe_app(
        self, creds: PageCredentials, page_id: str, *, fields: Sequence[str] = WEBHOOK_FIELDS
    ) -> bool:
        """`POST /{page_id}/subscribed_apps`: deliver these webhook fields of the Page to our app."""
        path = f"{_segment(page_id)}/subscribed_apps"
        data, _usage = await self._call(
            creds, "POST", path, params={"subscribed_fields": ",".join(fields)}
        )
        return isinstance(data, dict) and data.get("success") is True

    async def subscribed_apps(self, creds: PageCredentials, page_id: str) -> list[dict[str, Any]]:
        """`GET /{page_id}/subscribed_apps`: the apps receiving the Page's webhooks (empty once
        Meta unsubscribed an app whose endpoint failed for an hour: docs/graph-api.md,
        "A webhook POST")."""
        path = f"{_segment(page_id)}/subscribed_apps"
        data, usage = await self._call(creds, "GET", path)
        apps = data.get("data") if isinstance(data, dict) else None
        if not isinstance(apps, list):
            raise wire.bad_answer(f"GET {path}", usage, idempotent=True, detail="no data array")
        return [app for app in apps if isinstance(app, dict)]

    # ----------------------------------------------------------------------------- transport

    async def _call(
        self,
        creds: PageCredentials | None,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
        root: bool = False,
        on_sent: Callable[[], None] | None = None,
        not_before: float | None = None,
        secrets: tuple[str, ...] = (),
        refine: Callable[[GraphError], None] | None = None,
    ) -> tuple[Any, Usage]:
        """One request; the decoded JSON and the usage on success, else a `GraphError`.

        `on_sent` is called when the request's body has been written to the connection; the
        request is written no earlier than `not_before` (`time.monotonic()`). Without
        `creds` the request has no token (the token endpoint); `secrets` are values the
        query carries, scrubbed from every error like the credentials. `refine` may
        reclassify an error Graph answered before it is logged and raised."""
        url = f"/{self._version}/{path}" if not root else f"/{self._version}/"
        query = dict(params or {})
        headers: dict[str, str] = {}
        redact = secrets
        if creds is not None:
            if (proof := creds.appsecret_proof) is not None:
                query["appsecret_proof"] = proof  # derived from the token, useless without it
            headers["Authorization"] = f"Bearer {creds.access_token}"
            redact += creds.secrets()
        context = f"{method} {path or '/'}"
        try:
            response = await self._http.request(
                method,
                url,
                query=query,
                json_body=json_body,
                headers=headers,
                on_sent=on_sent,
                not_before=not_before,
            )
        except Exception as exc:  # every transport failure, expected or not, is a GraphError
            failure = wire.transport_error(
                exc,
                context,
                idempotent=idempotent,
                may_have_left=may_have_left(exc),
                redact=redact,
            )
            if secrets:  # aiohttp's exception may name the URL, query and all: leave it out
                raise failure from None
            raise failure from exc
        usage = Usage.from_headers(response.headers)
        data = wire.decode_json(response.content)
        error = error_from_body(
            data, status=response.status, usage=usage, context=context, redact=redact
        )
        if error is None and not response.is_success:
            error = wire.status_error(
                response.status, response.headers.get("retry-after"), usage, context
            )
        if error is not None:
            if refine is not None:
                refine(error)
            logger.info(
                "Graph %s failed: kind=%s status=%s code=%s subcode=%s fbtrace_id=%s",
                context,
                error.kind.value,
                error.status,
                error.code,
                error.subcode,
                error.fbtrace_id,
            )
            raise error
        if data is wire.INVALID_JSON:
            raise wire.bad_answer(
                context,
                usage,
                idempotent=idempotent,
                detail="body is not JSON",
                status=response.status,
            )
        return data, usage
