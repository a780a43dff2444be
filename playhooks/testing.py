"""Helpers for testing a game that uses playhooks, without sleeping.

    clock = ManualClock()
    sink = MemorySink()
    tracker = Tracker(sinks=[sink], clock=clock)
    tracker.on_session_start("player-1")
    clock.advance(90)
    tracker.on_session_end()
    tracker.flush(timeout=5)
    assert sink.sessions[0]["durationSeconds"] == 90
"""

import threading
from datetime import datetime, timezone
from typing import Union

__all__ = ["ManualClock"]

_DEFAULT_START = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)


class ManualClock:
    """A clock that moves only when told: ``advance`` moves both clocks, ``jump_wall`` only the wall.

    Args:
        wall: the wall-clock time to start at, an aware datetime or seconds since the epoch.
    """

    def __init__(self, wall: Union[datetime, float] = _DEFAULT_START) -> None:
        self._wall = wall.timestamp() if isinstance(wall, datetime) else float(wall)
        self._monotonic = 1000.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of real time pass."""
        if seconds < 0:
            raise ValueError("time cannot go backwards; use jump_wall to move the wall clock alone")
        with self._lock:
            self._monotonic += seconds
            self._wall += seconds

    def jump_wall(self, seconds: float) -> None:
        """Set the system time forward (or backward, if negative) without time passing."""
        with self._lock:
            self._wall += seconds

    def __repr__(self) -> str:
        return f"ManualClock(wall={datetime.fromtimestamp(self._wall, timezone.utc).isoformat()})"
