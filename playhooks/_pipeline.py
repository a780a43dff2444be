"""What happens to queued hook calls, on the worker thread (or, for ``durability="sync"``, on the
caller): models are built and checked, turned into JSON, handed to in-process sinks, and written
to the spool for the delivery sinks. It also keeps the spool: session checkpoints, the recovery of
sessions a crashed process left open, the heartbeat and the bounds.
"""

import collections
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._errors import PayloadError, safe_repr
from ._owners import HEARTBEAT_SECONDS
from ._services import DeliverySink
from ._session import Segment, SessionOptions
from ._sinks import EVENT, SESSION, Payload, Sink
from ._stats import INVALID_EVENT, INVALID_SESSION, NO_SINK, SESSION_TOO_SHORT, SINK_ERROR, Counters, logger

if TYPE_CHECKING:  # the spool loads with a tracker that has delivery sinks, not with playhooks
    from ._spool import Record, Spool


# Queue items are tuples tagged by their first element, cheap to build on the game's thread.
RAW_EVENT = "raw_event"  # (RAW_EVENT, event_name, character_id, playfab_id, body, timestamp, custom_tags, session, called_at)
EVENT_MODEL = "event_model"  # (EVENT_MODEL, CharacterEvent): already built and checked by a strict caller
SEGMENT = "segment"  # (SEGMENT, Segment): a finished session

LIMITS_CHECK_SECONDS = 30.0  # how often the spool recounts its files (other processes write too)
_ENDED_REMEMBERED = 10_000
RECOVERY_SECONDS = 120.0  # how often to look for what crashed trackers left (one may die any time)


class Pipeline:
    """Turns queued items into payloads and puts them where they go. Thread-safe.

    Args:
        sinks: every sink; the delivery sinks among them are spooled for.
        spool: the spool, or None when no sink needs one.
        checkpoints: returns (session id, state) for each open session, read consistently.
        checkpoint_interval: seconds between checkpoints of open sessions.
        on_spooled: called after records were written (to wake the sender).
        now: the clock of records' created and due times (``_clock.steady_wall``).
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        counters: Counters,
        spool: "Optional[Spool]" = None,
        checkpoints: Callable[[], List[Tuple[str, Dict[str, Any]]]] = list,
        checkpoint_interval: float = 5.0,
        on_spooled: Callable[[], None] = lambda: None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._local = [sink for sink in sinks if not isinstance(sink, DeliverySink)]
        self._delivery = [sink for sink in sinks if isinstance(sink, DeliverySink)]
        self._counters = counters
        self._spool = spool
        self._checkpoints = checkpoints
        self._ended: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._checkpoint_interval = checkpoint_interval
        self._on_spooled = on_spooled
        self._now = now
        self._lock = threading.RLock()
        self._unwritten: "Dict[str, List[Record]]" = {}  # per delivery sink, until the round's commit
        self._ending: List[str] = []  # sessions that ended this round
        self._wire: Any = None
        self._payloads: Any = None
        self._next_checkpoint = 0.0
        self._next_heartbeat = 0.0
        self._next_limits_check = 0.0
        self._next_recovery = 0.0

    def process(self, items: List[Any]) -> None:
        """Build the payloads of queued items and hand them to the in-process sinks; records for
        the delivery sinks wait for ``commit``, so a round writes one spool file however much it holds.

        A bad item is dropped alone, counted under its reason, whatever it raises.
        """
        with self._lock:
            if self._wire is None:
                from . import _payloads, _wire  # loaded already when the tracker has delivery sinks

                self._wire, self._payloads = _wire, _payloads
            payloads = []
            for item in items:
                try:
                    payload = self._payload(item)
                except Exception as error:
                    detail = str(error) if isinstance(error, PayloadError) else f"{type(error).__name__} while building it"
                    self._counters.drop(INVALID_SESSION if item[0] == SEGMENT else INVALID_EVENT, detail)
                    continue
                if payload is not None:
                    payloads.append(payload)
                if item[0] == SEGMENT and self._spool is not None:
                    self._ending.append(item[1].session_id)
            self._counters.add("accepted", len(payloads))
            self._hand_over(payloads)

    def _payload(self, item: Any) -> Optional[Payload]:
        if item[0] == SEGMENT:
            segment = item[1]
            session = self._payloads.session_model(segment)
            if session is None:
                self._counters.drop(SESSION_TOO_SHORT, f"session {segment.session_id} had under 0.5 s of play")
                return None
            return Payload(SESSION, session.session_id, self._wire.unstructure(session))
        event = item[1] if item[0] == EVENT_MODEL else self._payloads.event_model(*item[1:])
        return Payload(EVENT, event.body[self._payloads.EVENT_ID_KEY], self._wire.unstructure(event))

    def _hand_over(self, payloads: List[Payload]) -> None:
        """Give payloads to the in-process sinks now, and keep the delivery sinks' records for ``commit``."""
        taken: set = set()
        failed: set = set()
        for sink in self._local:
            chosen = [payload for payload in payloads if payload.kind in sink.kinds]
            if not chosen:
                continue
            taken.update(map(id, chosen))
            try:
                sink.send(chosen)
            except Exception as error:
                failed.update(map(id, chosen))
                self._counters.drop(SINK_ERROR, f"{safe_repr(sink)} raised {safe_repr(error, 200)}", len(chosen))
        self._counters.add("handed_to_sinks", len(taken) - len(failed))
        if self._delivery:
            self._keep_for_commit(payloads, taken)
        if len(payloads) > len(taken):
            self._counters.drop(NO_SINK, "no sink takes them: give the Tracker a sink", len(payloads) - len(taken))

    def _keep_for_commit(self, payloads: List[Payload], taken: set) -> None:
        from ._spool import Record

        now = self._now()
        for sink in self._delivery:
            chosen = [payload for payload in payloads if payload.kind in sink.kinds]
            taken.update(map(id, chosen))
            self._unwritten.setdefault(sink.name, []).extend(
                Record(payload.key, payload.kind, sink.prepare(payload.data), created=now) for payload in chosen
            )

    def process_now(self, items: List[Any]) -> None:
        """``process`` and ``commit``, for a caller that wants its items on disk when it returns."""
        with self._lock:
            self.process(items)
            self.commit()

    def commit(self) -> None:
        """Write what this round built to the spool: one atomic file per destination."""
        with self._lock:
            unwritten, self._unwritten = self._unwritten, {}
            ending, self._ending = self._ending, []
            on_disk = True
            for name, records in unwritten.items():
                if records:
                    on_disk = self._spool.put(name, records, due=self._now()) and on_disk  # type: ignore[union-attr]
                    self._counters.add("written_to_spool", len(records))
            for session_id in ending:
                self._ended[session_id] = None  # no checkpoint may bring it back
                if len(self._ended) > _ENDED_REMEMBERED:
                    self._ended.popitem(last=False)
                if on_disk:  # its payload is on disk now: the checkpoint has served
                    self._spool.forget_checkpoint(session_id)  # type: ignore[union-attr]
            if any(unwritten.values()):
                self._on_spooled()

    def close(self) -> None:
        """Close the in-process sinks (the delivery sinks hold nothing to close)."""
        for sink in self._local:
            try:
                sink.close()
            except Exception:
                logger().exception("closing %s failed", safe_repr(sink))

    # -- spool upkeep, on the worker's rounds ----------------------------------------------------

    def housekeeping(self, flushing: bool = False) -> None:
        """Recover orphaned sessions, checkpoint, recount the bounds, beat the heart, and write out
        what a failed disk made us hold.

        A flush checkpoints at once; otherwise each has its interval.
        """
        if self._spool is None:
            return
        now = time.monotonic()
        # Read before taking this lock: the tracker's lock is taken first everywhere else.
        checkpoints = self._checkpoints() if flushing or now >= self._next_checkpoint else []
        with self._lock:
            if now >= self._next_recovery:
                self._next_recovery = now + RECOVERY_SECONDS
                self._recover()
            if flushing or now >= self._next_checkpoint:
                self._next_checkpoint = now + self._checkpoint_interval
                for session_id, state in checkpoints:
                    if session_id not in self._ended:  # it ended while we were reading
                        self._spool.checkpoint(session_id, state)
            if now >= self._next_limits_check:
                # The spool checks its bounds as it writes; this counts what other processes wrote.
                self._spool.recount()
                self._spool.enforce_limits()
                self._next_limits_check = now + LIMITS_CHECK_SECONDS
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + HEARTBEAT_SECONDS
                self._spool.heartbeat()
            self._spool.retry_disk(at_once=flushing)

    def _recover(self) -> None:
        """Send the sessions a dead process left open, as they stood at their last checkpoint."""
        from ._payloads import RECOVERED_KEY

        returned = self._spool.reclaim()  # type: ignore[union-attr]
        if returned:
            logger().info("took back %d spool file(s) a stopped tracker had claimed", returned)
        for state in self._spool.orphaned_checkpoints():  # type: ignore[union-attr]
            try:
                options = dict(state["options"])
                options["metadata"] = dict(options.get("metadata") or {}, **{RECOVERED_KEY: True})
                segment = Segment(
                    session_id=state["session_id"],
                    options=SessionOptions(**options),
                    started_at=datetime.fromtimestamp(state["started_at"], timezone.utc),
                    elapsed_seconds=float(state["elapsed_seconds"]),
                    active_seconds=float(state["active_seconds"]),
                )
            except Exception as error:  # a checkpoint is a file anyone may have written
                self._counters.drop(INVALID_SESSION, f"unusable checkpoint ({type(error).__name__})")
                continue
            logger().info("recovering session %s, left open by a stopped process", segment.session_id)
            self._counters.add("recovered_sessions")
            # Spooled here, before the generator removes the checkpoint it took.
            self.process([(SEGMENT, segment)])
            self.commit()
