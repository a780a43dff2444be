"""Sinks: where payloads go. The worker thread calls them; the game's thread never does.

``PlayCamp`` and ``PlayFab`` delivery sinks come with the delivery issue; these are the in-process
ones: ``MemorySink`` for tests, ``JsonlSink`` for a file, and any callable.
"""

import abc
import os
import threading
from typing import Any, Callable, Dict, FrozenSet, List, Sequence, Union

import attrs

SESSION = "session"
EVENT = "event"


@attrs.frozen
class Payload:
    """One payload, exactly as its service would receive it.

    Attributes:
        kind: ``"session"`` (a PlayCamp playtime session) or ``"event"`` (a PlayFab character event).
        key: the id that stays the same across retries: the ``sessionId``, or the event's
            ``playhooks_event_id``. Sinks that may see a payload twice deduplicate on it.
        data: the JSON object, as a dict.
    """

    kind: str
    key: str
    data: Dict[str, Any]


class Sink(abc.ABC):
    """A destination for payloads. Implement ``send``; override ``kinds`` to take only some."""

    kinds: FrozenSet[str] = frozenset({SESSION, EVENT})

    @abc.abstractmethod
    def send(self, payloads: Sequence[Payload]) -> None:
        """Take payloads, on the tracker's worker thread.

        An exception is logged on the ``playhooks`` logger and the payloads are counted as dropped
        with the reason ``sink_error``: it never reaches the game.
        """

    def close(self) -> None:
        """Release what the sink holds; called once by ``Tracker.close``."""


class MemorySink(Sink):
    """Keeps every payload in memory, for tests: ``sessions`` and ``events`` are lists of dicts.

    Call ``tracker.flush(timeout)`` before reading them: payloads arrive from the worker thread.
    """

    def __init__(self) -> None:
        self.sessions: List[Dict[str, Any]] = []
        self.events: List[Dict[str, Any]] = []

    def send(self, payloads: Sequence[Payload]) -> None:
        for payload in payloads:
            (self.sessions if payload.kind == SESSION else self.events).append(payload.data)

    def __repr__(self) -> str:
        return f"MemorySink(sessions={len(self.sessions)}, events={len(self.events)})"


class JsonlSink(Sink):
    """Appends each payload to a file as one line of JSON (sessions and events alike).

    The file is opened on the first write and flushed after each batch, so a reader (``tail -f``)
    sees payloads as they come.

    Args:
        path: the file to append to; its directory must exist.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self.path = os.fspath(path)
        self._file: Any = None
        self._lock = threading.Lock()

    def send(self, payloads: Sequence[Payload]) -> None:
        import json  # on the worker's thread, not in the game's import

        lines = "".join(json.dumps(payload.data, ensure_ascii=False) + "\n" for payload in payloads)
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(lines)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __repr__(self) -> str:
        return f"JsonlSink({self.path!r})"


class CallbackSink(Sink):
    """Calls a function with each payload; ``Tracker(sinks=[fn])`` wraps plain callables in it."""

    def __init__(self, callback: Callable[[Payload], Any]) -> None:
        self.callback = callback

    def send(self, payloads: Sequence[Payload]) -> None:
        for payload in payloads:
            self.callback(payload)

    def __repr__(self) -> str:
        return f"CallbackSink({self.callback!r})"
