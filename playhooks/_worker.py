"""The worker thread: everything a hook does not do on the game's thread.

It wakes every ``flush_interval`` (or at once on ``flush``), takes what the hooks queued, builds
and validates the models, turns them into JSON and hands them to the sinks. Work is done in small
batches with a pause for the GIL between them, so a backlog does not stall the game's frame.
"""

import collections
import logging
import threading
import time
from typing import Any, Deque, List, Optional, Sequence

from ._errors import PayloadError
from ._payloads import EVENT_ID_KEY, event_model, session_model
from ._sinks import EVENT, SESSION, Payload, Sink
from ._stats import INVALID_EVENT, INVALID_SESSION, NO_SINK, SESSION_TOO_SHORT, SINK_ERROR, Counters

log = logging.getLogger("playhooks")

# Queue items are tuples tagged by their first element, cheap to build on the game's thread.
RAW_EVENT = "raw_event"  # (RAW_EVENT, event_name, character_id, playfab_id, body, timestamp, custom_tags, session, called_at)
EVENT_MODEL = "event_model"  # (EVENT_MODEL, CharacterEvent): already built and checked by a strict caller
SEGMENT = "segment"  # (SEGMENT, Segment): a finished session

_BATCH = 16  # about 0.25 ms of work: the longest the game waits for the GIL between batches


class Worker:
    """Drains ``queue`` into ``sinks`` on a daemon thread (it never keeps the process alive)."""

    def __init__(self, queue: Deque[Any], sinks: Sequence[Sink], counters: Counters, interval: float) -> None:
        self._queue = queue
        self._sinks = sinks
        self._counters = counters
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = False
        self._in_hand = 0
        self._wire: Any = None
        self._thread = threading.Thread(target=self._run, name="playhooks-worker", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Payloads queued or being processed (flush markers excluded)."""
        queued = sum(1 for item in list(self._queue) if type(item) is tuple)
        return queued + self._in_hand

    def flush(self, timeout: float) -> int:
        """Wait until what was queued before the call has been handed to the sinks.

        Returns:
            how many payloads are still pending when it returns (0: all done).
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
        """Flush within ``timeout``, then let the thread end; returns what is still pending."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        pending = self.flush(timeout)
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return pending

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # never let the worker die: the game keeps calling hooks
                log.exception("playhooks worker failed; it carries on")
            if self._stopping and not self._queue:
                break
        for sink in self._sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing %r failed", sink)

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
                self._deliver(self._payloads(batch))
            finally:
                self._in_hand = 0
                for marker in markers:
                    marker.set()
            time.sleep(0)  # let the game's thread take the GIL between batches

    def _payloads(self, batch: List[Any]) -> List[Payload]:
        if self._wire is None:
            from . import _wire  # cattrs loads here, on this thread, not in the game's import

            self._wire = _wire
        payloads = []
        for item in batch:
            try:
                payload = self._payload(item)
            except PayloadError as error:
                self._counters.drop(INVALID_SESSION if item[0] == SEGMENT else INVALID_EVENT, str(error))
                continue
            if payload is not None:
                payloads.append(payload)
        self._counters.add("accepted", len(payloads))
        return payloads

    def _payload(self, item: Any) -> Optional[Payload]:
        if item[0] == SEGMENT:
            segment = item[1]
            session = session_model(segment)
            if session is None:
                self._counters.drop(SESSION_TOO_SHORT, f"session {segment.session_id} had under 0.5 s of play")
                return None
            return Payload(SESSION, session.session_id, self._wire.unstructure(session))
        event = item[1] if item[0] == EVENT_MODEL else event_model(*item[1:])
        return Payload(EVENT, event.body[EVENT_ID_KEY], self._wire.unstructure(event))

    def _deliver(self, payloads: List[Payload]) -> None:
        failed = set()
        taken = set()
        for sink in self._sinks:
            chosen = [payload for payload in payloads if payload.kind in sink.kinds]
            if not chosen:
                continue
            taken.update(map(id, chosen))
            try:
                sink.send(chosen)
            except Exception as error:
                log.exception("%r failed to take %d payload(s)", sink, len(chosen))
                failed.update(map(id, chosen))
                self._counters.drop(SINK_ERROR, f"{sink!r} raised {type(error).__name__}", len(chosen))
        untaken = len(payloads) - len(taken)
        if untaken:
            self._counters.drop(NO_SINK, "no sink takes them: give the Tracker a sink", untaken)
        self._counters.add("delivered", len(taken) - len(failed))


def new_queue() -> Deque[Any]:
    """The game-to-worker queue: a deque, whose append is atomic and costs about 0.05 us."""
    return collections.deque()
