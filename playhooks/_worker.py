"""The worker thread: everything a hook does not do on the game's thread.

It wakes every ``flush_interval`` (or at once on ``flush``), takes what the hooks queued and hands
it to the pipeline in small batches, with a pause for the GIL between them, so a backlog does not
stall the game's frame; then the round's records are written to the spool at once (one fsync
however many), and the pipeline keeps the spool.
"""

import collections
import threading
import time
from typing import Any, Deque, List

from ._pipeline import Pipeline
from ._stats import ERROR, Counters


_BATCH = 16  # about 0.25 ms of work: the longest the game waits for the GIL between batches
# The most a round processes before it writes and keeps the spool: a game thread that holds the
# GIL between our batches makes a round slow, and checkpoints must not wait for a whole backlog.
_ROUND_SECONDS = 0.1
BURST = 1000  # events waiting that start a round before the interval is up


class Worker:
    """Drains ``queue`` into ``pipeline`` on a daemon thread (it never keeps the process alive)."""

    def __init__(self, queue: Deque[Any], pipeline: Pipeline, interval: float, counters: Counters) -> None:
        self._queue = queue
        self._pipeline = pipeline
        self._counters = counters
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

    def wake(self) -> None:
        """Start a round now: the game has queued a burst."""
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return not self._thread.is_alive()

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
            started = time.monotonic()
            cut_short = False
            try:
                cut_short = self._round()
            except Exception as error:  # never let the worker die: the game keeps calling hooks
                self._counters.say(
                    "worker", "playhooks worker failed (%s); it carries on", type(error).__name__, level=ERROR, exc_info=True
                )
            if self._stopping and not self._queue:
                break
            # One round per interval however busy, as each costs an fsync; a flush (which sets
            # the event), what a round had no time for, or a burst does not wait.
            if not cut_short and len(self._queue) < BURST:
                self._wake.wait(max(0.0, started + self._interval - time.monotonic()))
            self._wake.clear()
        self._pipeline.close()

    def _round(self) -> bool:
        """Process what was queued when the round began (for ``_ROUND_SECONDS`` at most), write it
        in one spool file, then keep the spool: a steady stream of hook calls never starves the
        checkpoints and heartbeats. Returns whether it left some of that for the next round."""
        markers: List[threading.Event] = []
        try:
            cut_short = self._process_queued(markers)
            self._pipeline.commit()
            self._pipeline.housekeeping(flushing=bool(markers))  # a flush: checkpoints before it returns
            return cut_short
        finally:
            self._in_hand = 0
            for marker in markers:
                marker.set()

    def _process_queued(self, markers: List[threading.Event]) -> bool:
        queue = self._queue
        ends = time.monotonic() + _ROUND_SECONDS
        for _ in range(0, len(queue), _BATCH):
            if time.monotonic() > ends:
                return True  # the rest is the next round's, which starts at once
            batch: List[Any] = []
            while queue and len(batch) < _BATCH:
                item = queue.popleft()
                if type(item) is tuple:
                    batch.append(item)
                else:
                    markers.append(item)
            self._in_hand += len(batch)
            self._pipeline.process(batch)
            time.sleep(0)  # let the game's thread take the GIL between batches
        return False


def new_queue() -> Deque[Any]:
    """The game-to-worker queue: a deque, whose append is atomic and costs about 0.05 us."""
    return collections.deque()
