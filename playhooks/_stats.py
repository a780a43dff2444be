"""Counters behind ``Tracker.stats()``: what became of each payload, and why one was dropped."""

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    import logging

DEBUG, WARNING, ERROR = 10, 30, 40  # logging's levels, without loading logging to name them


def logger() -> "logging.Logger":
    """playhooks' logger. ``logging`` loads when something is first said, not with playhooks: it is
    a few milliseconds of a game's start."""
    import logging

    return logging.getLogger("playhooks")

# Why a payload was dropped. Each is counted; the first of each kind is logged as a warning.
INVALID_EVENT = "invalid_event"
INVALID_SESSION = "invalid_session"
SESSION_TOO_SHORT = "session_too_short"
QUEUE_FULL = "queue_full"
TRACKER_CLOSED = "tracker_closed"
SINK_ERROR = "sink_error"
NO_SINK = "no_sink"
GAVE_UP = "gave_up"  # not delivered within the attempts or the age allowed: kept in dead/ too
SPOOL_FULL = "spool_full"
# What ``Tracker.stats()`` counts, each present from the start whatever the sinks (see its docstring).
COUNTS = ("accepted", "handed_to_sinks", "written_to_spool", "confirmed_by_service", "refused_by_service", "retried", "recovered_sessions")


class Counters:
    """Thread-safe counts. Hot paths add to them rarely: only when something goes wrong."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._dropped: Counter = Counter()
        self._said: set = set()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def drop(self, reason: str, detail: str, amount: int = 1) -> None:
        """Count ``amount`` payloads lost for ``reason``, and say so in the log (see ``say``)."""
        with self._lock:
            self._dropped[reason] += amount
        self.say(reason, "dropped %d payload(s), %s: %s", amount, reason, detail)

    def say(self, kind: str, message: str, *args: Any, level: int = WARNING, exc_info: bool = False) -> None:
        """Log a problem: the first of each ``kind`` at ``level``, the rest at debug.

        A bad event sent every frame, or a disk that stays full, must not flood the game's log.
        """
        with self._lock:
            first = kind not in self._said
            self._said.add(kind)
        logger().log(level if first else DEBUG, message, *args, exc_info=exc_info)

    def snapshot(self) -> Dict[str, Any]:
        """Every count of ``COUNTS`` (0 where nothing happened), and the drops by reason."""
        with self._lock:
            counts: Dict[str, Any] = {name: self._counts[name] for name in COUNTS}
            counts["dropped"] = dict(self._dropped)
        return counts
