"""Scripted faults for the emulator: what a flaky network and a struggling service do.

A fault applies to the next ``count`` requests on its route (or on every API route):

- ``status``: answer with that HTTP status (a body in the service's own error shape unless given);
- ``delay``: wait ``seconds``, then answer normally;
- ``drop``: close the connection without an answer;
- ``hang``: answer nothing until the emulator stops (or ``seconds`` pass), then close: a client
  sees its read timeout.

A random fault rate, with a seed for repeatable runs, answers that share of requests with a 503, a
500 or a dropped connection.
"""

import http
import random
import threading
from typing import Any, List, Mapping, Optional

import attrs

from ._server import can_send_header

KINDS = ("status", "delay", "drop", "hang")
ROUTE_GROUPS = {
    "playcamp": ("/v1/server/playtime/sessions", "/v1/server/playtime/sessions/bulk"),
    "playfab": ("/Server/WriteCharacterEvent",),
}
DEFAULT_HANG_SECONDS = 120.0
_KNOWN_STATUSES = frozenset(status.value for status in http.HTTPStatus)


def _kind(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)} (got {value!r})")


def _count(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"count: must be an integer >= 1 (got {value!r})")


def _status(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not int or value not in _KNOWN_STATUSES:
        raise ValueError(f"status: must be an HTTP status code (got {value!r})")


def _headers(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, Mapping) or not all(can_send_header(k, v) for k, v in value.items()):
        raise ValueError(f"headers: must map header names to latin-1 text without line breaks (got {value!r})")
    if any(name.lower() == "content-length" for name in value):
        raise ValueError("headers: Content-Length is the body's own, never scripted")


def _seconds(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) not in (int, float) or value < 0:
        raise ValueError(f"seconds: must be a number >= 0 (got {value!r})")


@attrs.frozen
class Fault:
    """One scripted fault; ``route`` is a path, ``"playcamp"``, ``"playfab"``, or None for all."""

    kind: str = attrs.field(validator=_kind)
    count: int = attrs.field(default=1, validator=_count)
    route: Optional[str] = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str)))
    status: int = attrs.field(default=503, validator=_status)
    headers: Mapping[str, str] = attrs.field(factory=dict, validator=_headers)
    body: Optional[Any] = None
    # For delay, how long; for hang, how long at most (by default until the emulator stops).
    seconds: float = attrs.field(default=DEFAULT_HANG_SECONDS, validator=_seconds)

    def applies_to(self, path: str) -> bool:
        return self.route is None or path == self.route or path in ROUTE_GROUPS.get(self.route, ())


class FaultPlan:
    """The faults waiting to happen, taken in the order they were scripted."""

    def __init__(self, rate: float = 0.0, seed: Optional[int] = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate: must be between 0 and 1 (got {rate!r})")
        self._rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._scripted: List[List[Any]] = []  # [fault, requests it still applies to]

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._scripted.append([fault, fault.count])

    def clear(self) -> None:
        with self._lock:
            self._scripted.clear()

    def take(self, path: str) -> Optional[Fault]:
        """The fault for this request, if any, counting it as used."""
        with self._lock:
            for entry in self._scripted:
                fault = entry[0]
                if fault.applies_to(path):
                    entry[1] -= 1
                    if entry[1] == 0:
                        self._scripted.remove(entry)
                    return fault
            if self._rate and self._random.random() < self._rate:
                choice = self._random.choice((503, 500, "drop"))
                return Fault("drop") if choice == "drop" else Fault("status", status=choice)
        return None
