"""What the gateway process counts (Prometheus, served at ``/metrics``) and the state of its
ingest (served at ``/health``): an operator sees a stopped ingest at once, and why.

One registry per process; the ingest worker and the clock write, the HTTP API reads.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry()
MESSAGES = Counter("xl_gateway_messages", "Messages taken from the broker, by outcome "
                   "(case_created, case_merged, case_updated, case_reopened, duplicate, evidence, dead_letter)",
                   ["outcome"], registry=REGISTRY)
INGEST_FAILURES = Counter("xl_gateway_ingest_failures", "Batches not committed because the database failed "
                          "(kept unacknowledged and tried again)", registry=REGISTRY)
INGEST_FAILING = Gauge("xl_gateway_ingest_failing", "1 while ingest cannot commit (the database fails)",
                       registry=REGISTRY)
NOTICES = Counter("xl_gateway_notices", "Notices (dispatch, escalation) by outcome: sent, or set_aside when one "
                  "could not be built (a dead letter says why)", ["outcome"], registry=REGISTRY)
CLOCK_FAILURES = Counter("xl_gateway_clock_failures", "Clock steps that failed (escalation, notices, quarantine)",
                         ["step"], registry=REGISTRY)


class IngestState:
    """Whether ingest is committing, since when it is not, and the last error (for ``/health``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self.last_commit_at: float | None = None

    def committed(self, outcomes: list[str], now: float | None = None) -> None:
        for outcome in outcomes:
            MESSAGES.labels(outcome).inc()
        with self._lock:
            self.failing_since, self.last_commit_at = None, time.time() if now is None else now
        INGEST_FAILING.set(0)

    def failed(self, error: str, now: float | None = None) -> None:
        INGEST_FAILURES.inc()
        INGEST_FAILING.set(1)
        with self._lock:
            self.last_error = error[:500]
            if self.failing_since is None:
                self.failing_since = time.time() if now is None else now

    def view(self) -> dict:
        with self._lock:
            return {"state": "failing" if self.failing_since is not None else "ok",
                    "failing_since": self.failing_since, "last_error": self.last_error,
                    "last_commit_at": self.last_commit_at}
