"""The outbound webhooks sender (issue 22): a loop in every worker that claims due
deliveries, POSTs each signed event, and records the attempt.

Several workers may run it at once: each delivery is claimed by a conditional UPDATE
(services/outbound_deliveries.claim) before it is sent, so no two send it at the same time.
Every time is the worker's `Clock`, so tests drive retries and the 3-day rule without
sleeping. The rules (what is due, retries, failing, turning off) are in
services/outbound_deliveries.py; the network in outbound_http.py.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from pagecast import __version__
from pagecast.errors import ConfigError
from pagecast.outbound_http import OutboundHttp, Outcome
from pagecast.services import outbound_deliveries
from pagecast.worker.state import Env

__all__ = ["BATCH", "OutboundSender", "deliver_forever"]

logger = logging.getLogger(__name__)

# Deliveries claimed and sent at once by one worker in one pass.
BATCH = 20
USER_AGENT = f"Pagecast-Webhooks/{__version__}"
UNREADABLE_SECRET = (
    "not sent: the endpoint's signing secret cannot be decrypted with the current secret key "
    "(PAGECAST_SECRET_KEY or <data_dir>/secret.key changed); make a new secret (rotate-secret) "
    "and give it to the receiver"
)


class OutboundSender:
    """One worker's sender: its HTTP pool and one pass over the due deliveries."""

    def __init__(self, env: Env) -> None:
        self.env = env
        config = env.config
        self.http = OutboundHttp(
            timeout=config.webhooks_timeout, allow_private=config.webhooks_allow_private
        )
        # Past the attempt's timeout: a live worker always records its attempt first.
        self.lease = timedelta(seconds=config.webhooks_timeout + 30)

    async def close(self) -> None:
        await self.http.close()

    async def run_once(self) -> int:
        """Turn off endpoints failing for 3 days, then send what is due; how many were sent."""
        env, now = self.env, self.env.clock.now()
        # Reads first (no SQLite write lock while there is nothing to do: the usual case).
        async with env.db.reading() as session:
            failing = await outbound_deliveries.long_failing(session, now)
        if failing:
            async with env.db.transaction() as session:
                await outbound_deliveries.disable_long_failing(session, now)
        async with env.db.reading() as session:
            ids = await outbound_deliveries.due(session, now, BATCH)
        claimed = []
        for delivery_id in ids:
            async with env.db.transaction() as session:
                due = await outbound_deliveries.claim(session, delivery_id, now, self.lease)
            if due is not None:
                claimed.append(due)
        await asyncio.gather(*(self._send(due) for due in claimed))
        return len(claimed)

    async def _send(self, due: outbound_deliveries.Due) -> None:
        env = self.env
        try:
            secret = env.vault.decrypt(due.secret_encrypted)
        except ConfigError:
            # The secret key changed since the secret was made: an attempt that failed and
            # says what to do (the admins read it in the log), not a pass that fails forever.
            outcome = Outcome(status=None, ms=0, error=UNREADABLE_SECRET)
        else:
            timestamp = int(env.clock.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Pagecast-Signature": outbound_deliveries.signature(secret, timestamp, due.body),
            }
            outcome = await self.http.post(due.url, due.body, headers)
        async with env.db.transaction() as session:
            status = await outbound_deliveries.record(
                session,
                due.delivery_id,
                env.clock.now(),
                status=outcome.status,
                ms=outcome.ms,
                excerpt=outcome.excerpt,
                error=outcome.error,
            )
        if status != "delivered":
            logger.info(
                "webhook delivery %d to endpoint %d: %s (%s)",
                due.delivery_id,
                due.endpoint_id,
                status,
                outcome.error or f"HTTP {outcome.status}",
            )


async def deliver_forever(env: Env) -> None:
    """Send due deliveries every `webhooks_poll` seconds (at once again after a full batch)
    until cancelled; a failed pass is logged and tried again."""
    sender = OutboundSender(env)
    try:
        while True:
            sent = 0
            try:
                sent = await sender.run_once()
            except Exception:
                logger.warning("outbound webhooks: a pass failed; trying again", exc_info=True)
            if sent < BATCH:
                await env.clock.sleep(env.config.webhooks_poll)
    finally:
        await sender.close()
