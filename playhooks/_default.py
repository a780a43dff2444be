"""The default tracker behind the module-level hooks: the one piece of global state, kept here.

For scripts and Ren'Py, where passing a tracker around is awkward:

    playhooks.configure(sinks=[...])
    playhooks.on_session_start("player-1")

``configure`` replaces the default tracker (closing the old one); ``reset`` closes and forgets it
(tests call it). Like every tracker, it is closed at interpreter exit, within ``EXIT_TIMEOUT``.
"""

import threading
from typing import Any, Iterable, Optional

from ._session import Session
from ._tracker import EXIT_TIMEOUT, SinkLike, Tracker

_lock = threading.Lock()
_tracker: Optional[Tracker] = None


def configure(sinks: Iterable[SinkLike] = (), **settings: Any) -> Tracker:
    """Make a new default tracker (``Tracker(sinks, **settings)``) and return it."""
    global _tracker
    tracker = Tracker(sinks, **settings)
    with _lock:
        previous, _tracker = _tracker, tracker
    if previous is not None:
        previous.close(EXIT_TIMEOUT)
    return tracker


def reset() -> None:
    """Close the default tracker and forget it; the next hook makes a new one."""
    global _tracker
    with _lock:
        previous, _tracker = _tracker, None
    if previous is not None:
        previous.close(EXIT_TIMEOUT)


def default_tracker() -> Tracker:
    """The default tracker, made with no sinks if ``configure`` was never called."""
    tracker = _tracker
    return tracker if tracker is not None else configure()


def on_session_start(user_id: str, **options: Any) -> Optional[Session]:
    """``Tracker.on_session_start`` on the default tracker."""
    return default_tracker().on_session_start(user_id, **options)


def on_session_pause(session: Optional[Session] = None) -> None:
    """``Tracker.on_session_pause`` on the default tracker."""
    default_tracker().on_session_pause(session)


def on_session_resume(session: Optional[Session] = None) -> None:
    """``Tracker.on_session_resume`` on the default tracker."""
    default_tracker().on_session_resume(session)


def on_session_end(session: Optional[Session] = None) -> None:
    """``Tracker.on_session_end`` on the default tracker."""
    default_tracker().on_session_end(session)


def on_character_event(event_name: str, **fields: Any) -> None:
    """``Tracker.on_character_event`` on the default tracker."""
    default_tracker().on_character_event(event_name, **fields)

