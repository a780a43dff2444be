"""A tracker's settings: one immutable value, checked when the tracker is made."""

from typing import Any

import attrs

from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ConfigurationError

DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_FLUSH_INTERVAL = 0.1
DEFAULT_MAX_QUEUE = 10_000


def _flag(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not bool:
        raise ConfigurationError(f"{attribute.name}: must be True or False (got {value!r})")


def _positive_number(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) not in (int, float) or not value > 0:
        raise ConfigurationError(f"{attribute.name}: must be a number > 0 (got {value!r})")


def _positive_int(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not int or value < 1:
        raise ConfigurationError(f"{attribute.name}: must be an integer >= 1 (got {value!r})")


def _clock(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not (callable(getattr(value, "monotonic", None)) and callable(getattr(value, "wall", None))):
        raise ConfigurationError(f"{attribute.name}: must have monotonic() and wall() methods (got {value!r})")


@attrs.frozen
class Settings:
    """How a Tracker behaves.

    Attributes:
        strict: check every hook argument on the caller and raise ``PayloadError`` (for
            development and tests). Off, hooks never raise: bad input is logged and counted.
        idle_timeout: seconds a session may stay paused before it ends at the pause; a resume
            after that starts a new session. 300 s, as the background timeouts of Unity Analytics
            and GameAnalytics.
        flush_interval: seconds between the worker's rounds: how long a payload may wait in memory.
        max_queue: events held in memory waiting for the worker; past it new events are dropped
            (counted as ``queue_full``). Sessions are never dropped for room.
        clock: where time is read; ``playhooks.testing.ManualClock`` in tests.
    """

    strict: bool = attrs.field(default=False, validator=_flag)
    idle_timeout: float = attrs.field(default=DEFAULT_IDLE_TIMEOUT, validator=_positive_number)
    flush_interval: float = attrs.field(default=DEFAULT_FLUSH_INTERVAL, validator=_positive_number)
    max_queue: int = attrs.field(default=DEFAULT_MAX_QUEUE, validator=_positive_int)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=_clock, repr=False)
