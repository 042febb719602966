"""The simulator's state model: app, Pages, tokens, people, threads, outbox and knobs
(docs/simulator.md, "State").

Everything lives in memory in one `SimState`; every random decision draws from one of its
seeded streams (`state.rng("mid")`, `state.rng("fault")`, ...), so the same seed and the
same calls give the same mids and the same fault decisions.
"""

from __future__ import annotations

import base64
import random
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

from pagecast.simulator.clock import Clock
from pagecast.simulator.engagement import parse_rules
from pagecast.simulator.ratelimit import PageLimiter, RollingWindow

__all__ = [
    "DEFAULT_SCOPES",
    "DEFAULT_TASKS",
    "DEFAULT_USER_ID",
    "AppConfig",
    "AuthCode",
    "CallRecord",
    "Consent",
    "Knobs",
    "OutboxEntry",
    "Page",
    "SimState",
    "Thread",
    "ThreadMessage",
    "Token",
    "User",
]

DEFAULT_SCOPES = (
    "pages_messaging",
    "pages_manage_metadata",
    "pages_read_engagement",
    "pages_show_list",
)
DEFAULT_USER_ID = "10000000000001"
DEFAULT_TASKS = ("ANALYZE", "ADVERTISE", "MESSAGING", "MODERATE", "CREATE_CONTENT", "MANAGE")
ALL_FIELDS = (
    "messages",
    "messaging_postbacks",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "message_reactions",
    "messaging_referrals",
    "messaging_optins",
    "messaging_policy_enforcement",
    "standby",
)


@dataclass(slots=True)
class Token:
    token: str
    kind: str  # PAGE | USER | SYSTEM_USER
    page_id: str | None
    user_id: str = DEFAULT_USER_ID
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    tasks: tuple[str, ...] = DEFAULT_TASKS
    valid: bool = True
    invalid_subcode: int | None = None
    expires_at: float = 0.0
    page_ids: tuple[str, ...] = ()  # pages a USER token manages (for /me/accounts)
    declined: tuple[str, ...] = ()  # permissions the user declined (for /me/permissions)


@dataclass(slots=True)
class Consent:
    """Who answers the OAuth dialog, and how (`POST /__sim/oauth`; docs/simulator.md,
    "Facebook Login")."""

    user_token: str
    user_id: str
    decline: tuple[str, ...] = ()  # "*" cancels the dialog
    pages: tuple[str, ...] | None = None  # None: every Page the simulator has


@dataclass(slots=True)
class AuthCode:
    """A code the dialog gave out: single use, for one redirect_uri, for ten minutes."""

    code: str
    redirect_uri: str
    issued_at: float
    user_token: str
    user_id: str
    granted: tuple[str, ...]
    declined: tuple[str, ...]
    page_ids: tuple[str, ...]
    used: bool = False


@dataclass(slots=True)
class User:
    psid: str
    page_id: str
    first_name: str = ""
    last_name: str = ""
    status: str = "active"  # active | blocked | unavailable
    last_user_action: float | None = None
    ctm_window_until: float | None = None
    role_on_app: bool = False
    profile_available: bool = True
    thread_owner_app_id: str | None = None


@dataclass(slots=True)
class ThreadMessage:
    mid: str
    from_id: str
    to_id: str
    created: float
    text: str | None = None
    attachments: list[dict[str, Any]] | None = None
    app_id: str | None = None
    metadata: str | None = None
    reordered: bool = False  # already swapped with a concurrent send (reorder_concurrent_ms)


@dataclass(slots=True)
class Thread:
    id: str
    page_id: str
    psid: str
    updated: float
    messages: list[ThreadMessage] = field(default_factory=list)
    unread: int = 0
    delivered_wm: int = 0
    read_wm: int = 0


@dataclass(slots=True)
class Page:
    page_id: str
    name: str
    engaged_users: int = 1000
    app_secret: str | None = None
    restriction: str | None = None  # None | "368" | "1893063" | "2022"
    news: bool = False
    subscribed: dict[str, list[str]] = field(default_factory=dict)
    personas: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    threads: dict[str, Thread] = field(default_factory=dict)
    limiter: PageLimiter = field(default_factory=PageLimiter)


@dataclass(slots=True)
class OutboxEntry:
    mid: str
    page_id: str
    psid: str
    message: dict[str, Any] | None
    metadata: str | None
    messaging_type: str | None
    tag: str | None
    created: float
    sender_action: str | None = None
    dropped_after_commit: bool = False


@dataclass(slots=True)
class CallRecord:
    time: float
    method: str
    path: str
    page_id: str | None
    psid: str | None
    status: int
    code: int | None
    subcode: int | None
    usage: dict[str, Any] | None
    drop: str | None = None
    in_batch: bool = False  # an operation of a batch request, not a request of its own


@dataclass(slots=True)
class AppConfig:
    app_id: str = "1517776481860111"
    name: str = "Pagecast Simulator App"
    app_secret: str | None = None
    require_appsecret_proof: bool = False
    live: bool = True
    human_agent: bool = False
    webhook_url: str | None = None
    verify_token: str | None = None
    webhook_enabled: bool = True


@dataclass(slots=True)
class Knobs:
    """Every behaviour Graph leaves open, as a setting (`POST /__sim/knobs`; docs/simulator.md,
    "Knobs")."""

    delivery_delay: tuple[float, float] = (0.5, 3.0)
    read_delay: tuple[float, float] = (5.0, 21600.0)
    p_delivered: float = 0.98
    p_read: float = 0.6
    # Content-dependent engagement (simulator/engagement.py): rules by text, and when a
    # person's click and reply come after the send.
    engagement: tuple[dict[str, Any], ...] = ()
    click_delay: tuple[float, float] = (5.0, 600.0)
    reply_delay: tuple[float, float] = (30.0, 3600.0)
    p_omit_mids: float = 0.2
    p_duplicate: float = 0.0
    p_reorder: float = 0.0
    p_seconds_timestamp: float = 0.0
    signature: str = "ok"  # ok | wrong | missing | uppercase
    escape_slashes: bool = True
    batch_window_ms: float = 0.0
    coalesce_above: int = 20
    max_entries_per_post: int = 50
    ack_timeout: float = 5.0
    disable_after: float = 3600.0
    retry_backoff: tuple[float, ...] = (0.0, 5.0, 30.0, 120.0, 600.0, 900.0)
    extend_penalty: bool = True
    penalty_minutes: float = 1.0
    header_threshold_pct: float = 1.0
    time_fraction: float = 0.4
    cputime_fraction: float = 0.3
    emit_page_usage: bool = False
    permission_status: int = 400
    throttle_status: int = 400
    code_1200_status: int = 500
    unavailable_code: str = "10/2018108"  # or "200/1545041"
    user_error_text: bool = True
    image_file_class: str = "text"  # text | av
    reject_long_titles: bool = False
    count_utf16: bool = False
    allow_utility: bool = False
    retired_tags_from: float = 1777248000.0  # 2026-04-27T00:00:00Z
    batch_shuffle: bool = True
    batch_timeout_commits: bool = False
    max_conversation_limit: int = 100
    app_calls_per_hour: int = 200_000  # USER / app token budget behind x-app-usage (200 x 1000)
    inbox_degrade_per_second: float = 40.0
    inbox_degrade_window: float = 10.0
    inbox_degrade_cooldown: float = 600.0
    reorder_concurrent_ms: float = 0.0
    attachment_fail_urls: tuple[str, ...] = ()
    attachment_slow_urls: tuple[str, ...] = ()
    attachment_sizes: dict[str, int] = field(default_factory=dict)
    calls_log_size: int = 200_000

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f for f in fields(self)}
        for key in values:
            if key not in names:
                raise KeyError(f"Unknown knob {key!r}; known knobs: {', '.join(sorted(names))}.")
        checked = dict(values)
        if "engagement" in checked:  # checked before anything changes
            checked["engagement"] = parse_rules(checked["engagement"])
        for key, value in checked.items():
            current = getattr(self, key)
            if key == "engagement":
                pass
            elif isinstance(current, tuple):
                value = tuple(value)
            elif isinstance(current, float) and isinstance(value, int | float):
                value = float(value)
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SimState:
    """All simulator state; `reset()` forgets everything but the clock and start-up settings."""

    def __init__(
        self,
        *,
        seed: int,
        clock: Clock,
        app_secret: str | None,
        webhook_url: str | None,
        verify_token: str | None,
    ) -> None:
        self.clock = clock
        self.emitter: Any = None  # the webhook emitter, attached by the app
        self._initial = (app_secret, webhook_url, verify_token)
        self.reset(seed=seed)

    def reset(self, *, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        app_secret, webhook_url, verify_token = self._initial
        self.app = AppConfig(
            app_secret=app_secret, webhook_url=webhook_url, verify_token=verify_token
        )
        self.knobs = Knobs()
        self.pages: dict[str, Page] = {}
        self.tokens: dict[str, Token] = {}
        self.personas: dict[str, str] = {}  # persona id -> page id
        self.threads_by_id: dict[str, Thread] = {}
        self.outbox: list[OutboxEntry] = []
        self.outbox_by_mid: dict[str, OutboxEntry] = {}
        self.calls: deque[CallRecord] = deque(maxlen=self.knobs.calls_log_size)
        self.call_count = 0
        self.accepted = 0
        self.errors_by_code: dict[str, int] = {}
        self.scripts: list[dict[str, Any]] = []
        self.faults = {
            "p_transient": 0.0,
            "p_timeout_before": 0.0,
            "p_timeout_after": 0.0,
            "p_throttle": 0.0,
            "p_5xx": 0.0,
        }
        self.app_throttled_until = 0.0
        self.app_calls = RollingWindow(span=3600.0)  # calls made with USER or app tokens
        self.latency: tuple[float, float] | None = None
        self.consent: Consent | None = None
        self.codes: dict[str, AuthCode] = {}
        self._rngs: dict[str, random.Random] = {}
        self._counter = 0

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._rngs.clear()

    def rng(self, stream: str) -> random.Random:
        rng = self._rngs.get(stream)
        if rng is None:
            rng = self._rngs[stream] = random.Random(f"{self.seed}:{stream}")
        return rng

    def new_mid(self) -> str:
        raw = self.rng("mid").randbytes(64)
        return "m_" + base64.urlsafe_b64encode(raw).decode()[:86]

    def new_id(self, digits: int = 16) -> str:
        self._counter += 1
        low = 10 ** (digits - 1)
        return str(self.rng("ids").randrange(low, low * 10))

    def trace_id(self) -> str:
        return base64.urlsafe_b64encode(self.rng("trace").randbytes(9)).decode()[:11]

    def secret_for(self, page: Page | None) -> str | None:
        if page is not None and page.app_secret:
            return page.app_secret
        return self.app.app_secret

    def thread_for(self, page: Page, psid: str) -> Thread:
        thread = page.threads.get(psid)
        if thread is None:
            thread = Thread(
                id="t_" + self.new_id(17), page_id=page.page_id, psid=psid, updated=self.clock.now()
            )
            page.threads[psid] = thread
            self.threads_by_id[thread.id] = thread
        return thread
