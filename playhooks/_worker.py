"""The worker thread: everything a hook does not do on the game's thread.

It wakes every ``flush_interval`` (or at once on ``flush``), takes what the hooks queued and hands
it to the pipeline in small batches, with a pause for the GIL between them, so a backlog does not
stall the game's frame. Between rounds it lets the pipeline keep the spool.
"""

import collections
import logging
import threading
import time
from typing import Any, Deque, List

from ._pipeline import Pipeline

log = logging.getLogger("playhooks")

_BATCH = 16  # about 0.25 ms of work: the longest the game waits for the GIL between batches


class Worker:
    """Drains ``queue`` into ``pipeline`` on a daemon thread (it never keeps the process alive)."""

    def __init__(self, queue: Deque[Any], pipeline: Pipeline, interval: float) -> None:
        self._queue = queue
        self._pipeline = pipeline
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = False
        self._in_hand = 0
        self._thread = threading.Thread(target=self._run, name="playhooks-worker", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Payloads queued or being processed (flush markers excluded)."""
        queued = sum(1 for item in list(self._queue) if type(item) is tuple)
        return queued + self._in_hand

    def flush(self, timeout: float) -> int:
        """Wait until what was queued before the call has been processed, and open sessions
        checkpointed.

        Returns:
            how many payloads are still queued when it returns (0: all done).
        """
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            # A sink flushing from inside send must not wait for itself; a stopped worker never comes.
            return self.pending
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        done.wait(timeout)
        return self.pending

    def stop(self, timeout: float) -> int:
        """Flush within ``timeout``, then let the thread end; returns what is still queued."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        pending = self.flush(timeout)
        self._wake.set()
        if threading.current_thread() is not self._thread:  # a sink may close its own tracker
            self._thread.join(max(0.0, deadline - time.monotonic()))
        return pending

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._drain()
                self._pipeline.housekeeping()
            except Exception:  # never let the worker die: the game keeps calling hooks
                log.exception("playhooks worker failed; it carries on")
            if self._stopping and not self._queue:
                break
        self._pipeline.close()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            batch: List[Any] = []
            markers: List[threading.Event] = []
            while queue and len(batch) < _BATCH:
                item = queue.popleft()
                if type(item) is tuple:
                    batch.append(item)
                else:
                    markers.append(item)
            self._in_hand = len(batch)
            try:
                self._pipeline.process(batch)
                if markers:  # a flush: open sessions are checkpointed before it returns
                    self._pipeline.housekeeping(flushing=True)
            finally:
                self._in_hand = 0
                for marker in markers:
                    marker.set()
            time.sleep(0)  # let the game's thread take the GIL between batches


def new_queue() -> Deque[Any]:
    """The game-to-worker queue: a deque, whose append is atomic and costs about 0.05 us."""
    return collections.deque()
