"""The sending worker, one file per job (docs/architecture.md, "Issue 18: the worker package").

- process.py: the process (BullMQ on both queues, signals, heartbeat, sweep loop, graceful
  shutdown, burst mode) and `build`;
- registry.py: job name -> handler; jobs' payloads are typed in pagecast/jobs.py;
- plan.py, chunk.py (claim and the send loop), send.py (one request), outcome.py (an
  answer's meaning; the retry rule itself is services/retries.py), results.py (writing results: throttle, stop Page,
  breaker, retry round), schedule.py, snapshot.py, sweep.py;
- state.py: what the handlers are handed (Env: clients, config, clock, shared state).
"""

from pagecast.worker.config import WorkerConfig
from pagecast.worker.process import SendingWorker, build

__all__ = ["SendingWorker", "WorkerConfig", "build"]
