"""Play-session timing: the state behind a ``Session`` handle, kept on the game's thread.

A session's clock is three numbers from the monotonic clock (start, pause start, paused total) and
one wall-clock reading taken at the start. From them:

- ``startedAt`` is the wall clock at the start, to the millisecond;
- ``endedAt`` is ``startedAt`` plus the monotonic time that passed, so it can never precede
  ``startedAt``, whatever the system clock does meanwhile;
- ``durationSeconds`` is active play: the time that passed minus the time paused, rounded to the
  nearest second (see ``Segment.duration_seconds``).

A session that ends while paused ends when the pause began: the player stopped playing then. A
pause longer than the idle timeout closes the session at the pause; ``resume`` then starts a new
one (a new ``sessionId``) under the same handle.
"""

import os
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Mapping, Optional

import attrs

from ._clock import Clock
from ._models import creator_key_format, json_copy, optional_flag, optional_text, platform_choice, required_text


@attrs.frozen
class SessionOptions:
    """What a session sends besides its timing, checked once when it starts."""

    user_id: str = attrs.field(validator=required_text)
    campaign_id: Optional[str] = attrs.field(default=None, validator=optional_text)
    creator_key: Optional[str] = attrs.field(default=None, validator=creator_key_format)
    platform: Optional[str] = attrs.field(default=None, validator=platform_choice)
    metadata: Optional[Mapping[str, Any]] = attrs.field(default=None, converter=json_copy)
    callback_id: Optional[str] = attrs.field(default=None, validator=optional_text)
    is_test: Optional[bool] = attrs.field(default=None, validator=optional_flag)
    # Defaults for this session's character events; not part of the PlayCamp payload.
    playfab_id: Optional[str] = attrs.field(default=None, validator=optional_text)
    character_id: Optional[str] = attrs.field(default=None, validator=optional_text)


class Segment:
    """A finished stretch of play with one ``sessionId``: what becomes a PlayCamp session.

    A plain class, not attrs: it is made and read only inside playhooks, and each attrs class
    costs the game's start about a millisecond to make.
    """

    __slots__ = ("session_id", "options", "started_at", "elapsed_seconds", "active_seconds")

    def __init__(
        self, session_id: str, options: SessionOptions, started_at: datetime, elapsed_seconds: float, active_seconds: float
    ) -> None:
        self.session_id = session_id
        self.options = options
        self.started_at = started_at
        self.elapsed_seconds = elapsed_seconds
        self.active_seconds = active_seconds

    @property
    def ended_at(self) -> datetime:
        ended = self.started_at + timedelta(seconds=self.elapsed_seconds)
        return ended.replace(microsecond=ended.microsecond // 1000 * 1000)

    @property
    def duration_seconds(self) -> int:
        """Active seconds rounded half up: over many sessions, rounding neither adds nor loses time.

        A session with under half a second of play rounds to 0, which PlayCamp refuses (>= 1): the
        tracker counts it as dropped with the reason ``session_too_short`` rather than invent a
        second of play.
        """
        return int(self.active_seconds + 0.5)


def random_uuid() -> str:
    """A random (version 4) UUID, written as ``str(uuid.uuid4())`` writes it.

    Not ``uuid.uuid4()`` itself: the ``uuid`` module loads ``platform`` on import, a few
    milliseconds of the game's start, for sixteen random bytes and two fixed fields.
    """
    digits = bytearray(os.urandom(16))
    digits[6] = digits[6] & 0x0F | 0x40  # version 4
    digits[8] = digits[8] & 0x3F | 0x80  # the RFC 4122 variant
    text = digits.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class Session:
    """A player's play session, as returned by ``Tracker.on_session_start``.

    Pass it to the other hooks as ``session=`` when several sessions are open at once. Its
    ``id`` is the current PlayCamp ``sessionId``; it changes when an idle pause splits the session.
    """

    __slots__ = ("options", "id", "_clock", "_started_at", "_started", "_paused_since", "_paused_total", "_ended")

    def __init__(self, options: SessionOptions, clock: Clock) -> None:
        self.options = options
        self._clock = clock
        self._ended = False
        self._begin(clock.monotonic())

    def _begin(self, now: float) -> None:
        self.id = random_uuid()
        wall = datetime.fromtimestamp(self._clock.wall(), timezone.utc)
        self._started_at = wall.replace(microsecond=wall.microsecond // 1000 * 1000)
        self._started = now
        self._paused_since: Optional[float] = None
        self._paused_total = 0.0

    @property
    def user_id(self) -> str:
        return self.options.user_id

    @property
    def paused(self) -> bool:
        return self._paused_since is not None

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def active_seconds(self) -> float:
        """Seconds of active play so far in the current segment."""
        return self._active_until(self._clock.monotonic())

    def _active_until(self, now: float) -> float:
        end = self._paused_since if self._paused_since is not None else now
        return max(0.0, end - self._started - self._paused_total)

    # The transitions below are called by the Tracker under its lock.

    def _pause(self) -> None:
        if not self._ended and self._paused_since is None:
            self._paused_since = self._clock.monotonic()

    def _resume(self, idle_timeout: float) -> Optional[Segment]:
        """Resume; if the pause outlasted ``idle_timeout``, return the segment it closed."""
        if self._ended or self._paused_since is None:
            return None
        now = self._clock.monotonic()
        if now - self._paused_since > idle_timeout:
            finished = self._segment(now)
            self._begin(now)
            return finished
        self._paused_total += now - self._paused_since
        self._paused_since = None
        return None

    def _end(self) -> Optional[Segment]:
        """End the session; ending it again returns None."""
        if self._ended:
            return None
        self._ended = True
        return self._segment(self._clock.monotonic())

    def _checkpoint(self) -> Dict[str, Any]:
        """Where the session stands now, for the spool: what a crash would leave of it."""
        now = self._clock.monotonic()
        end = self._paused_since if self._paused_since is not None else now
        return {
            "session_id": self.id,
            "options": attrs.asdict(self.options),
            "started_at": self._started_at.timestamp(),
            "elapsed_seconds": end - self._started,
            "active_seconds": self._active_until(now),
        }

    def _segment(self, now: float) -> Segment:
        end = self._paused_since if self._paused_since is not None else now
        return Segment(
            session_id=self.id,
            options=self.options,
            started_at=self._started_at,
            elapsed_seconds=end - self._started,
            active_seconds=self._active_until(now),
        )

    def __repr__(self) -> str:
        state = "ended" if self._ended else "paused" if self.paused else "active"
        return f"<Session {self.id} user_id={self.options.user_id!r} {state}>"
