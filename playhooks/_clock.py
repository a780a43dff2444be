"""Where playhooks reads the time, so tests can inject their own (see ``playhooks.testing``).

Two clocks, because they answer different questions: ``monotonic`` measures durations and never
jumps; ``wall`` (seconds since the epoch, UTC) dates things and may jump when the user or NTP sets
the system time. A session reads the wall clock once, at its start, and derives its end from the
monotonic clock.
"""

import time
from typing import Callable, Protocol


class Clock(Protocol):
    """Anything with these two callables can stand in for the system's clocks."""

    monotonic: Callable[[], float]
    wall: Callable[[], float]


class SystemClock:
    """The real clocks."""

    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)


SYSTEM_CLOCK = SystemClock()


def steady_wall(clock: Clock = SYSTEM_CLOCK) -> Callable[[], float]:
    """A wall clock that only the monotonic clock moves: the wall time now, plus the monotonic
    time that passes from here on.

    Delivery times (retry dues, ``Retry-After``, records' ages) are read from it, so a player
    setting the date forward or back while the game runs changes none of them. Across restarts
    the wall clock is the only common reference: each process starts from it again.
    """
    offset = clock.wall() - clock.monotonic()
    monotonic = clock.monotonic
    return lambda: monotonic() + offset
