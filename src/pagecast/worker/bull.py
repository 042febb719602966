"""BullMQ workers that Node's BullMQ, and so Bull Board, list as workers.

Node's `Queue.getWorkers()` lists the Redis connections named `<prefix>:<base64 of the
queue name>` or `<prefix>:<base64 of the queue name>:w:<worker name>` (bullmq's
`QueueBase.clientName` and `Worker`, which names only its blocking connection). The Python
library names every connection of a worker `<prefix>:<queue name>`, which Node never matches,
so Bull Board showed "No workers" for running Pagecast workers.
"""

from __future__ import annotations

from typing import Any

from bullmq import Worker

from pagecast.queue import bull_client_name

__all__ = ["NamedWorker"]


class NamedWorker(Worker):  # type: ignore[misc]
    """A bullmq `Worker` whose blocking connection carries Node's name for the worker `name`
    (Pagecast's worker id), so one Pagecast worker is one worker in Node's list."""

    _client_name_set: bool  # bullmq's, set in its __init__

    def __init__(self, queue_name: str, processor: Any, opts: dict[str, Any], name: str) -> None:
        super().__init__(queue_name, processor, opts | {"name": name})
        self.nodeClientName = bull_client_name(queue_name, name)

    async def _ensure_client_names(self) -> None:
        # Replaces bullmq's (worker.py), which names the shared connection too: Node would
        # count each of its pooled connections as one more worker.
        if self._client_name_set:
            return
        await self.blockingRedisConnection.set_client_name(self.nodeClientName)
        self._client_name_set = True
