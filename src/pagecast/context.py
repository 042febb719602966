"""What the web app, the CLI and the worker share per process: database, vault, Graph client, settings.

Everything is created on first use and closed by `close()`, so importing or starting the
app connects to nothing.
"""

from __future__ import annotations

from pagecast.audience_sync import SyncRunner
from pagecast.db import Database
from pagecast.errors import ServiceUnavailable, UpstreamError
from pagecast.facebook_login import GraphFacebook
from pagecast.graph import ErrorKind, GraphClient, GraphError, PageCredentials, make_http_client
from pagecast.graph.transport import GraphHttp
from pagecast.import_runner import ImportOptions, ImportRunner
from pagecast.queue import Queue
from pagecast.ratelimit import PageLimiter
from pagecast.redis_url import parse_redis_url
from pagecast.security import PASSWORDS, Vault
from pagecast.services.pages import Owner
from pagecast.settings import Settings

__all__ = ["AppContext"]


class AppContext:
    def __init__(
        self, settings: Settings, *, database: Database | None = None, redis_url: str | None = None
    ) -> None:
        self.settings = settings
        PASSWORDS.resize(settings.password_hash_concurrency)
        # The embedded Redis's URL when `serve` started one; REDIS_URL otherwise.
        self.redis_url = redis_url or settings.redis_url
        self._queue: Queue | None = None
        self._limiter: PageLimiter | None = None
        self.db = database or Database(
            settings.resolved_database_url(), sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        self._owns_db = database is None
        self._vault: Vault | None = None
        self._http: GraphHttp | None = None
        self._graph: GraphClient | None = None
        self._syncs: SyncRunner | None = None
        self._imports: ImportRunner | None = None

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = Vault(self.settings.resolved_secret_key())
        return self._vault

    @property
    def graph(self) -> GraphClient:
        if self._graph is None:
            if self.settings.demo_without_its_simulator():
                raise ServiceUnavailable(
                    f"{self.settings.data_dir} is the data directory of `pagecast serve --demo`, "
                    "whose Page exists only in the Graph API simulator inside that process; "
                    "use the running demo's dashboard or API (or set PAGECAST_GRAPH_API_URL to a "
                    "simulator) instead of sending to Facebook."
                )
            self._http = make_http_client(
                self.settings.graph_api_url,
                connect_timeout=self.settings.graph_connect_timeout,
                read_timeout=self.settings.graph_read_timeout,
                max_connections=self.settings.graph_max_connections,
            )
            self._graph = GraphClient(self._http, version=self.settings.graph_api_version)
        return self._graph

    @property
    def queue(self) -> Queue:
        """The sending queue; its Redis connection opens on the first call that needs it."""
        if self._queue is None:
            if self.redis_url is None:
                raise ServiceUnavailable(
                    "No Redis is configured: set REDIS_URL, or run `pagecast serve`, which starts "
                    "an embedded one."
                )
            ca_file = self.settings.redis_tls_ca_file
            self._queue = Queue(
                parse_redis_url(
                    self.redis_url,
                    tls_ca_file=str(ca_file) if ca_file else None,
                    tls_verify=self.settings.redis_tls_verify,
                )
            )
        return self._queue

    @property
    def limiter(self) -> PageLimiter:
        """Per-Page rate limits, on the queue's Redis (connected lazily by the queue)."""
        if self._limiter is None:
            self._limiter = PageLimiter(self.queue.lazy_redis())
        return self._limiter

    @property
    def syncs(self) -> SyncRunner:
        """Audience syncs run by this process (background tasks, stopped by `close()`)."""
        if self._syncs is None:
            self._syncs = SyncRunner(
                self.db, graph=self.graph, vault=self.vault, app_secret=self.app_secret_for(None)
            )
        return self._syncs

    @property
    def imports(self) -> ImportRunner:
        """Contact imports run by this process (background tasks, stopped by `close()`)."""
        if self._imports is None:
            self._imports = ImportRunner(
                self.db,
                ImportOptions(
                    directory=self.settings.data_dir / "imports",
                    batch_rows=self.settings.import_batch_rows,
                    max_tags=self.settings.import_max_tags_per_contact,
                ),
            )
        return self._imports

    def app_secret_for(self, page_secret: str | None) -> str | None:
        if page_secret:
            return page_secret
        return self.settings.app_secret.get_secret_value() if self.settings.app_secret else None

    def facebook_login(self) -> GraphFacebook:
        """Facebook Login for "Connect with Facebook"; a 503 naming the setting when
        PAGECAST_APP_ID or PAGECAST_APP_SECRET is not set."""
        secret = self.settings.app_secret
        return GraphFacebook(
            self.graph,
            app_id=self.settings.app_id,
            app_secret=secret.get_secret_value() if secret else None,
            web_url=self.settings.facebook_web_url,
        )

    async def verify_token(self, access_token: str, app_secret: str | None) -> Owner:
        """Ask the Graph API who owns a Page token (`GET /me`); refusals become clear errors."""
        creds = PageCredentials(access_token, self.app_secret_for(app_secret))
        try:
            me = await self.graph.get_me(creds)
        except GraphError as exc:
            if exc.kind in (ErrorKind.STOP_PAGE, ErrorKind.BAD_REQUEST):
                raise UpstreamError(
                    f"Facebook refused the access token: {exc.message} (code {exc.code_text}). "
                    "Generate a new Page access token with the pages_messaging permission and "
                    "try again.",
                    field="access_token",
                ) from exc
            raise UpstreamError(
                f"Could not reach the Graph API at {self.settings.graph_api_url} to check the token "
                f"({exc.kind.value}: {exc.message}). Try again in a minute.",
                field="access_token",
            ) from exc
        return Owner(id=me.id, name=me.name or me.id)

    async def close(self) -> None:
        if self._syncs is not None:  # first: they record their end in the database
            await self._syncs.close()
            self._syncs = None
        if self._imports is not None:
            await self._imports.close()
            self._imports = None
        if self._queue is not None:
            await self._queue.close()
            self._queue = None
        if self._http is not None:
            await self._http.aclose()
            self._http = self._graph = None
        if self._owns_db:
            await self.db.close()
