"""Load generator for the webhook intake test: posts signed bodies all at once, one connection
each, over raw asyncio streams, and prints `[[status, seconds], ...]` as JSON.

It runs as its own process (`python webhook_load.py < job.json`) so that generating the load
does not share the server's event loop or its CPU time. `job.json`:
`{"host", "port", "path", "requests": [{"body": "...", "signature": "sha256=..."}]}`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


async def _post(host: str, port: int, path: str, body: bytes, signature: str) -> list[Any]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    answer = await reader.read()
    elapsed = time.monotonic() - started
    writer.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return [status, elapsed]


async def _main(job: dict[str, Any]) -> list[list[Any]]:
    host, port, path = job["host"], int(job["port"]), job["path"]
    return list(
        await asyncio.gather(
            *(_post(host, port, path, r["body"].encode(), r["signature"]) for r in job["requests"])
        )
    )


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(json.load(sys.stdin)))))
