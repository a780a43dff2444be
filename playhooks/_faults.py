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

import random
import threading
from typing import Any, List, Mapping, Optional

import attrs

KINDS = ("status", "delay", "drop", "hang")
ROUTE_GROUPS = {
    "playcamp": ("/v1/server/playtime/sessions", "/v1/server/playtime/sessions/bulk"),
    "playfab": ("/Server/WriteCharacterEvent",),
}
DEFAULT_HANG_SECONDS = 120.0


def _kind(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)} (got {value!r})")


def _count(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"count: must be an integer >= 1 (got {value!r})")


@attrs.frozen
class Fault:
    """One scripted fault; ``route`` is a path, ``"playcamp"``, ``"playfab"``, or None for all."""

    kind: str = attrs.field(validator=_kind)
    count: int = attrs.field(default=1, validator=_count)
    route: Optional[str] = None
    status: int = 503
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: Optional[Any] = None
    seconds: float = 0.0

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
