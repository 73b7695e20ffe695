"""The retention policy (serve/retention.py) run by the service itself, every BINSIGHT_RETENTION_INTERVAL_MINUTES.

A thread of its own that sleeps on an event: shutdown sets it, so the job
stops at once between two runs (during one, when that run ends), and the
lifespan joins it. The first run comes one interval after
start-up, not at it: a service that restarts does not hold back its start
on housekeeping, and a run is never more than one interval late.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from serve.retention import RetentionReport

log = logging.getLogger("binsight.serve.retention")


class RetentionJob:
    def __init__(self, run_policy: Callable[[], RetentionReport], interval_s: float):
        if interval_s <= 0:
            raise ValueError("the retention job needs an interval above 0 seconds (0 turns it off: do not start it)")
        self.run_policy, self.interval_s = run_policy, interval_s
        self.runs = 0
        self.last_report: RetentionReport | None = None  # of the last run that did not fail
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="binsight-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def tick(self) -> RetentionReport | None:
        """One run of the policy; a failure is logged and the next interval tries again (the service keeps serving)."""
        try:
            report = self.run_policy()
        except Exception:
            log.exception("retention run failed; the next one follows in %.0f s", self.interval_s)
            return None
        finally:
            self.runs += 1
        self.last_report = report
        if report.total:
            log.info("retention: %s", report.summary())
        return report

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
