"""playhooks: play-session and character-event telemetry for Python games.

    import playhooks

    tracker = playhooks.Tracker(sinks=[playhooks.PlayCamp("keyId:secret"), playhooks.PlayFab("ABCD", "secret")])
    session = tracker.on_session_start("player-1", playfab_id="A1B2C3", character_id="C0FFEE")
    tracker.on_character_event("level_completed", body={"level": 3})
    tracker.on_session_end()
    tracker.close()
"""

__version__ = "0.1.0"

from ._default import (
    configure,
    on_character_event,
    on_session_end,
    on_session_pause,
    on_session_resume,
    on_session_start,
    reset,
)
from ._errors import ConfigurationError, PayloadError, PlayhooksError
from ._retry import RetryPolicy
from ._services import PlayCamp, PlayFab
from ._session import Session
from ._settings import Settings
from ._sinks import JsonlSink, MemorySink, Payload, Sink
from ._tracker import Tracker

__all__ = [
    "ConfigurationError",
    "JsonlSink",
    "MemorySink",
    "Payload",
    "PayloadError",
    "PlayCamp",
    "PlayFab",
    "PlayhooksError",
    "RetryPolicy",
    "Session",
    "Settings",
    "Sink",
    "Tracker",
    "configure",
    "on_character_event",
    "on_session_end",
    "on_session_pause",
    "on_session_resume",
    "on_session_start",
    "reset",
]
