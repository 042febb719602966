"""BullMQ workers that Node's BullMQ, and so Bull Board, list as workers.

Node's `Queue.getWorkers()` lists the Redis connections named `<prefix>:<base64 of the
queue name>` or `<prefix>:<base64 of the queue name>:w:<worker name>` (bullmq's
`QueueBase.clientName` and `Worker`, which names only its blocking connection). The Python
library names every connection of a worker `<prefix>:<queue name>`, which Node never matches,
so Bull Board showed "No workers" for running Pagecast workers.

`NamedWorker` replaces a private step of the Python library's `Worker`
(`_ensure_client_names`, bullmq 3.4 as uv.lock pins it). A bullmq without that step would
name its connections its own way again and Bull Board would silently show no worker, so
importing this module fails instead, naming the step and the version found.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from bullmq import Worker

from pagecast.queue import bull_client_name

__all__ = ["NamedWorker"]

_REPLACED = "_ensure_client_names"


def _unsupported(what: str) -> str:
    return (
        f"bullmq {version('bullmq')}'s Worker {what}: Pagecast's NamedWorker "
        f"(src/pagecast/worker/bull.py) replaces its private {_REPLACED} to name worker "
        "connections as Node's BullMQ and Bull Board read them. Install the bullmq version "
        "of uv.lock (`uv sync`), or adapt worker/bull.py to this one."
    )


if not callable(getattr(Worker, _REPLACED, None)):
    raise ImportError(_unsupported(f"has no {_REPLACED}"))


class NamedWorker(Worker):  # type: ignore[misc]
    """A bullmq `Worker` whose blocking connection carries Node's name for the worker `name`
    (Pagecast's worker id), so one Pagecast worker is one worker in Node's list."""

    _client_name_set: bool  # bullmq's, set in its __init__

    def __init__(self, queue_name: str, processor: Any, opts: dict[str, Any], name: str) -> None:
        super().__init__(queue_name, processor, opts | {"name": name})
        if not hasattr(self, "_client_name_set") or self.blockingRedisConnection is None:
            raise RuntimeError(_unsupported("has no _client_name_set or blocking connection"))
        self.nodeClientName = bull_client_name(queue_name, name)

    async def _ensure_client_names(self) -> None:
        # Replaces bullmq's (worker.py), which names the shared connection too: Node would
        # count each of its pooled connections as one more worker. The name also goes into
        # the connection pool's settings, so a reconnected socket carries it again.
        if self._client_name_set:
            return
        await self.blockingRedisConnection.set_client_name(self.nodeClientName)
        self._client_name_set = True
