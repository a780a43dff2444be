"""The relay's abuse limits: request rates, and payloads no honest game sends.

A game's payloads are checked with the same models as the client and the emulator use; on top,
the relay refuses what would be valid to the service but cannot be true of a player: a session
longer than a day, one that ends in the future or ended weeks ago, more active time than its own
start and end allow, ids that do not look like the studio's.
"""

import math
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Optional, Tuple

from ._config import Limits

Problem = Tuple[str, str, str]  # (reason counted, field, rule)


class WindowLimiter:
    """At most ``limit`` requests per key in each ``window`` (fixed windows, as the Redis one).

    Its memory is the keys of one window: an attacker inventing a player id per request costs it
    one second's worth of entries, not a growing table.
    """

    def __init__(self, limit: int, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._current = -1
        self._counts: Dict[str, int] = {}

    def check(self, key: str) -> Optional[int]:
        """Count a request for ``key``: None if allowed, else whole seconds to wait (at least 1)."""
        now = self._clock()
        number = int(now // self.window)
        with self._lock:
            if number != self._current:
                self._current, self._counts = number, {}
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        if count <= self.limit:
            return None
        return max(1, math.ceil((number + 1) * self.window - now))


def id_problem(limits: Limits, data: Dict[str, Any]) -> Optional[Problem]:
    """The first id that does not match the pattern configured for its field."""
    for field, pattern in limits.patterns.items():
        value = data.get(field)
        if isinstance(value, str) and pattern.fullmatch(value) is None:
            return "invalid_id", field, "does not match the relay's pattern for it"
    return None


def session_problem(limits: Limits, session: Any, now: datetime) -> Optional[Problem]:
    """Why a valid session cannot be a real one, or None."""
    skew = timedelta(seconds=limits.max_clock_skew_seconds)
    if session.duration_seconds > limits.max_session_seconds:
        return "implausible", "durationSeconds", f"must be at most {limits.max_session_seconds} seconds"
    if session.ended_at > now + skew:
        return "implausible", "endedAt", "is in the future"
    if session.started_at < now - timedelta(seconds=limits.max_session_age_seconds):
        return "implausible", "startedAt", f"is more than {limits.max_session_age_seconds} seconds ago"
    if session.duration_seconds > (session.ended_at - session.started_at).total_seconds() + 1:
        return "implausible", "durationSeconds", "is longer than from startedAt to endedAt"
    return None


def event_problem(limits: Limits, event: Any, now: datetime) -> Optional[Problem]:
    """Why a valid event cannot be a real one, or None: a time in the future."""
    if event.timestamp is not None and event.timestamp > now + timedelta(seconds=limits.max_clock_skew_seconds):
        return "implausible", "Timestamp", "is in the future"
    return None


def utc_now(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), timezone.utc)
