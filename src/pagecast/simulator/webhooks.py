"""The webhook emitter: signed POSTs to the callback URL from background tasks
(docs/simulator.md, "Webhooks").

Events wait in a heap keyed by sim-clock due time; one loop task posts what is due (each POST
in its own task, so a slow receiver never blocks the Send path), retries failures with
back-off and, after `disable_after` seconds of continuous failure, disables the webhook and
removes the app from every Page's `subscribed_apps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio.lowlevel
import httpx

from pagecast.simulator import engagement
from pagecast.simulator.state import OutboxEntry, Page, SimState, Thread
from pagecast.simulator.webhook_wire import check_loopback, serialize, sign

__all__ = ["Emitter", "check_loopback", "serialize", "sign"]


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    page_id: str = field(compare=False)
    field_name: str = field(compare=False)
    # a built event dict, ("delivery"|"read", thread, entry), or ("act", the person's action)
    event: Any = field(compare=False)
    attempt: int = field(default=0, compare=False)
    replayed: bool = field(default=False, compare=False)


class Emitter:
    """Schedules, signs, posts and retries webhook events for one `SimState`."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.paused = False
        self.failing_since: float | None = None
        self.posted = 0
        self.log: deque[dict[str, Any]] = deque(maxlen=2000)
        # (posted at, page id, field, event) of acknowledged events, for `replay`
        self.history: deque[tuple[float, str, str, dict[str, Any]]] = deque(maxlen=100_000)
        self._heap: list[_Pending] = []
        self._seq = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._sem: asyncio.Semaphore | None = None
        state.clock.on_advance(self.wake)

    # -- scheduling ---------------------------------------------------------------------
    def subscribed(self, page: Page, field_name: str) -> bool:
        app = self.state.app
        fields = page.subscribed.get(app.app_id)
        return bool(app.webhook_url and app.webhook_enabled and fields and field_name in fields)

    def schedule(self, page: Page, field_name: str, event: Any, delay: float = 0.0) -> None:
        if not self.subscribed(page, field_name):
            return
        self._seq += 1
        due = self.state.clock.now() + delay
        heapq.heappush(self._heap, _Pending(due, self._seq, page.page_id, field_name, event))
        self.wake()

    def page_sent(self, page: Page, thread: Thread, entry: OutboxEntry) -> None:
        """Echo now; delivery and read receipts later, by chance (knobs); with an
        `engagement` rule matching the message, its p_read and the person's click and reply
        (simulator/engagement.py)."""
        state, knobs = self.state, self.state.knobs
        rng = state.rng("webhook")
        message: dict[str, Any] = {"is_echo": True, "app_id": int(state.app.app_id)}
        if entry.metadata is not None:
            message["metadata"] = entry.metadata
        message["mid"] = entry.mid
        body = entry.message or {}
        if "text" in body:
            message["text"] = body["text"]
        if "attachment" in body:
            message["attachments"] = [body["attachment"]]
        if "quick_replies" in body:
            message["quick_replies"] = body["quick_replies"]
        self.schedule(
            page,
            "message_echoes",
            self._envelope(page.page_id, entry.psid, message, key="message", from_page=True),
        )
        delivered = rng.random() < knobs.p_delivered
        delivery_delay = rng.uniform(*knobs.delivery_delay)
        if delivered:
            self.schedule(page, "message_deliveries", ("delivery", thread, entry), delivery_delay)
        rule = engagement.rule_for(knobs.engagement, body)
        p_read = knobs.p_read if rule is None else rule.get("p_read", knobs.p_read)
        if rng.random() < p_read:
            read_delay = max(delivery_delay, rng.uniform(*knobs.read_delay))
            self.schedule(page, "message_reads", ("read", thread, entry), read_delay)
        if rule is not None:
            engagement.plan(state, page, entry, rule, delivered=delivered)

    def user_event(
        self, page: Page, psid: str, key: str, value: dict[str, Any], field_name: str
    ) -> None:
        """An event from the person (message, postback, reaction, referral, optin).

        While another app owns the thread (handover), it goes to `standby` instead, under
        `entry[].standby[]`, and a postback loses its `payload` (as the docs say)."""
        user = page.users.get(psid)
        owner = user.thread_owner_app_id if user is not None else None
        if owner and owner != self.state.app.app_id:
            field_name = "standby"
            if key == "postback":
                value = {k: v for k, v in value.items() if k != "payload"}
        self.schedule(page, field_name, self._envelope(page.page_id, psid, value, key=key))

    def optin(self, page: Page, sender: dict[str, str], value: dict[str, Any]) -> None:
        """`messaging_optins`; `sender` is `{"id": psid}` or a checkbox's `{"user_ref": ...}`."""
        event = {
            "sender": sender,
            "recipient": {"id": page.page_id},
            "timestamp": self._stamp(),
            "optin": value,
        }
        self.schedule(page, "messaging_optins", event)

    def replay(self, seconds: float | None = None) -> int:
        """Send again, due now, the acknowledged events posted in the last `seconds` of sim
        time (all that are kept when None), with their original bodies; answers how many."""
        now = self.state.clock.now()
        count = 0
        for posted, page_id, field_name, event in list(self.history):
            if seconds is not None and posted < now - seconds:
                continue
            self._seq += 1
            item = _Pending(now, self._seq, page_id, field_name, event, replayed=True)
            heapq.heappush(self._heap, item)
            count += 1
        self.wake()
        return count

    def policy(self, page: Page, action: str, reason: str, timestamp: int | None = None) -> int:
        """`messaging_policy_enforcement` about the Page (no sender); returns its timestamp.
        `timestamp` (epoch ms) stands for an event Facebook made earlier and delivers late."""
        stamp = self._stamp() if timestamp is None else timestamp
        event = {
            "recipient": {"id": page.page_id},
            "timestamp": stamp,
            "policy_enforcement": {"action": action, "reason": reason},
        }
        self.schedule(page, "messaging_policy_enforcement", event)
        return stamp

    def _stamp(self) -> int:
        ms = self.state.clock.now_ms()
        if self.state.knobs.p_seconds_timestamp and (
            self.state.rng("webhook").random() < self.state.knobs.p_seconds_timestamp
        ):
            return ms // 1000
        return ms

    def _envelope(
        self, page_id: str, psid: str, value: dict[str, Any], *, key: str, from_page: bool = False
    ) -> dict[str, Any]:
        sender, recipient = (page_id, psid) if from_page else (psid, page_id)
        return {
            "sender": {"id": sender},
            "recipient": {"id": recipient},
            "timestamp": self._stamp(),
            key: value,
        }

    def _build(self, item: _Pending) -> dict[str, Any] | None:
        if isinstance(item.event, dict):
            return item.event
        if item.event[0] == "act":  # the person acts now; its event is scheduled, due now
            item.event[1]()
            return None
        kind, thread, entry = item.event
        created = int(entry.created * 1000)
        if kind == "delivery":
            if thread.delivered_wm >= created:
                return None  # an earlier receipt already covered this message
            thread.delivered_wm = created
            delivery: dict[str, Any] = {"watermark": created}
            if self.state.rng("webhook").random() >= self.state.knobs.p_omit_mids:
                delivery = {"mids": [entry.mid], "watermark": created}
            return self._envelope(thread.page_id, thread.psid, delivery, key="delivery")
        if thread.read_wm >= created:
            return None
        thread.read_wm = created
        thread.delivered_wm = max(thread.delivered_wm, created)
        return self._envelope(thread.page_id, thread.psid, {"watermark": created}, key="read")

    # -- running ------------------------------------------------------------------------
    def wake(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._loop is not None and loop is not self._loop:
            if not self._loop.is_closed() and self._wake is not None:
                self._loop.call_soon_threadsafe(self._wake.set)  # woken from another thread
            return
        if loop is None:
            return
        if self._task is None or self._task.done():
            self._loop = loop
            self._wake = asyncio.Event()
            self._sem = asyncio.Semaphore(32)
            self._task = loop.create_task(self._run())
        assert self._wake is not None
        self._wake.set()

    def pending(self) -> int:
        return len(self._heap)

    def clear(self) -> None:
        self._heap.clear()
        self.history.clear()
        self.failing_since = None

    async def flush(self, timeout: float = 10.0) -> None:
        """Make every pending event due now and wait until all POSTs have finished."""
        now = self.state.clock.now()
        for item in self._heap:
            item.due = min(item.due, now)
        heapq.heapify(self._heap)
        self.wake()
        await self.idle(timeout)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until nothing is due and no POST is in flight."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            due = self._heap and self._heap[0].due <= self.state.clock.now()
            if not due and not self._inflight and not self.paused:
                return
            await asyncio.sleep(0.005)

    async def _run(self) -> None:
        assert self._wake is not None and self._sem is not None
        while True:
            self._wake.clear()
            if self.paused or not self._heap:
                await self._wake.wait()
                continue
            wait = self._heap[0].due - self.state.clock.now()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.01))
                continue
            if self.state.knobs.batch_window_ms > 0:
                await asyncio.sleep(self.state.knobs.batch_window_ms / 1000.0)
            items = self._take_due()
            knobs = self.state.knobs
            if knobs.batch_window_ms > 0:
                groups = [items]
            elif len(items) > knobs.coalesce_above:
                # a backlog (a fast campaign): several entries per POST, as Meta does under load
                size = max(1, knobs.max_entries_per_post)
                groups = [items[i : i + size] for i in range(0, len(items), size)]
            else:
                groups = [[i] for i in items]
            for group in groups:
                await self._sem.acquire()
                task = asyncio.get_running_loop().create_task(self._post(group))
                self._inflight.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        assert self._sem is not None
        self._sem.release()

    def _take_due(self) -> list[_Pending]:
        now = self.state.clock.now()
        items: list[_Pending] = []
        while self._heap and self._heap[0].due <= now and len(items) < 500:
            item = heapq.heappop(self._heap)
            if isinstance(item.event, tuple):
                built = self._build(item)
                if built is None:
                    continue
                item.event = built
            items.append(item)
        rng, knobs = self.state.rng("webhook"), self.state.knobs
        if knobs.p_reorder:
            for i in range(len(items) - 1):
                if rng.random() < knobs.p_reorder:
                    items[i], items[i + 1] = items[i + 1], items[i]
        return items

    async def _post(self, items: list[_Pending]) -> None:
        state, knobs = self.state, self.state.knobs
        app = state.app
        url = app.webhook_url
        pages = [state.pages.get(i.page_id) for i in items]
        live = [
            i
            for i, p in zip(items, pages, strict=True)
            if p is not None and self.subscribed(p, i.field_name)
        ]
        if not live or url is None:
            return
        entries = []
        for item in live:
            key = "standby" if item.field_name == "standby" else "messaging"
            entries.append({"id": item.page_id, "time": state.clock.now_ms(), key: [item.event]})
            if knobs.p_duplicate and state.rng("webhook").random() < knobs.p_duplicate:
                entries.append(dict(entries[-1]))
        body = serialize({"object": "page", "entry": entries}, escape_slashes=knobs.escape_slashes)
        headers = {"Content-Type": "application/json"}
        secret = state.secret_for(state.pages.get(live[0].page_id))
        if secret is not None:
            headers.update(sign(body, secret, knobs.signature))
        status: int | None = None
        try:
            response = await self._http().post(
                url, content=body, headers=headers, timeout=knobs.ack_timeout
            )
            status = response.status_code
        except httpx.HTTPError:
            status = None
        ok = status is not None and 200 <= status < 300
        self.log.append(
            {
                "time": state.clock.now(),
                "status": status,
                "ok": ok,
                "events": len(live),
                "fields": [i.field_name for i in live],
                "attempt": live[0].attempt,
            }
        )
        if ok:
            self.failing_since = None
            self.posted += 1
            now = state.clock.now()
            self.history.extend(
                (now, i.page_id, i.field_name, i.event) for i in live if not i.replayed
            )
            return
        now = state.clock.now()
        if self.failing_since is None:
            self.failing_since = now
        if now - self.failing_since >= knobs.disable_after:
            self._disable()
            return
        backoff = knobs.retry_backoff
        for item in live:
            item.due = now + backoff[min(item.attempt, len(backoff) - 1)]
            item.attempt += 1
            self._seq += 1
            item.seq = self._seq
            heapq.heappush(self._heap, item)
        self.wake()

    def _disable(self) -> None:
        app = self.state.app
        app.webhook_enabled = False
        for page in self.state.pages.values():
            page.subscribed.pop(app.app_id, None)
        self._heap.clear()
        self.failing_since = None

    async def verify(self) -> dict[str, Any]:
        """The subscription handshake: GET with hub.* params; the body must echo the challenge."""
        app = self.state.app
        if not app.webhook_url:
            return {"ok": False, "error": "No webhook URL is configured."}
        challenge = str(self.state.rng("webhook").randrange(10**8, 10**10))
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": app.verify_token or "",
            "hub.challenge": challenge,
        }
        try:
            response = await self._http().get(
                app.webhook_url, params=params, timeout=self.state.knobs.ack_timeout
            )
        except httpx.HTTPError as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        ok = response.status_code == 200 and response.text == challenge
        return {
            "ok": ok,
            "status": response.status_code,
            "challenge": challenge,
            "body": response.text[:200],
        }

    async def warm(self) -> None:
        """Build the HTTP client and load the async backend it runs on, before any event.

        Built on the first event instead, they held the event loop for 0.1-0.4 s (a TLS
        context, anyio's asyncio backend imported): a campaign's first echo is that event,
        and every Send call arriving meanwhile was handled when the loop let go, so calls
        spread over that time were counted toward their Page's second as if they had
        arrived together (50/s showed 60-64 calls in one sliding second; Graph counts a call
        when it arrives). The server runs this at startup (ASGI lifespan).
        """
        self._http()
        await anyio.lowlevel.checkpoint()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._task
            self._task = None
        self._loop = None
        for task in list(self._inflight):
            task.cancel()
        if self._client is not None:
            with contextlib.suppress(RuntimeError):
                await self._client.aclose()
            self._client = None
