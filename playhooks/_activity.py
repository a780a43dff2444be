"""What the live page shows: the last API requests a server answered, and a tally of what they carried.

The emulator and the relay each keep one ``ActivityLog`` and one ``Tally``. They are on the request
path of every benchmark, so an entry costs a few attribute stores and a deque append while it is
answered; the work of showing it (parsing the body again, finding its ids and its reason, taking
the secrets out) is done once, when a page first asks for it, and kept.

Secrets never leave: a view is built with the request's own secrets (its key, its Authorization
value) and the server's (configured keys, upstream secrets) replaced by ``<redacted>`` wherever
they appear, in the payload, its keys, the route or the reason; and any field whose name says it
holds a secret is redacted whatever its value.
"""

import collections
import itertools
import threading
import time
from typing import Any, Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ._api import parse_json

MAX_ENTRIES = 2000  # kept per log: the oldest go first; sequence numbers go on across the bound
MAX_PAGE = 500  # entries one poll is given at most: a page that fell behind asks again at once
MAX_PAYLOAD_BYTES = 64 * 1024  # a larger body is shown by its size alone
MAX_RAW_TEXT = 2000  # characters of a body that is not JSON, shown as text
MAX_EVENT_NAMES = 1000  # distinct names tallied; past it, under "(other)": a flood of names stays bounded
MINUTES_SHOWN = 30
REDACTED = "<redacted>"
# Field names (lower case, without "-" and "_") whose values are secrets, whatever they hold.
SECRET_FIELDS = frozenset(
    {"authorization", "apikey", "secret", "secretkey", "xsecretkey", "ingestkey", "adminkey", "password", "token", "entitytoken"}
)
# Upper bounds of the session-duration histogram's buckets, in seconds, and their labels.
DURATION_BUCKETS = ((60, "<1m"), (300, "1-5m"), (900, "5-15m"), (1800, "15-30m"), (3600, "30-60m"), (7200, "1-2h"))
LONGEST_BUCKET = "2h+"

ACCEPTED, REJECTED, DROPPED, FORWARDED, UPSTREAM_ERROR = "accepted", "rejected", "dropped", "forwarded", "upstream error"


class Entry:
    """One request as it was answered; its view for the page is made on first reading."""

    __slots__ = ("seq", "time", "service", "method", "route", "status", "outcome", "reason", "raw", "answer", "secrets", "_view")

    def __init__(
        self,
        seq: int,
        when: float,
        service: Optional[str],
        method: str,
        route: str,
        status: Optional[int],
        outcome: str,
        reason: str,
        raw: Any,
        answer: Any,
        secrets: Tuple[str, ...],
    ) -> None:
        self.seq, self.time, self.service, self.method, self.route = seq, when, service, method, route
        self.status, self.outcome, self.reason = status, outcome, reason
        self.raw, self.answer, self.secrets = raw, answer, secrets
        self._view: Optional[Dict[str, Any]] = None

    def view(self, server_secrets: Sequence[str]) -> Dict[str, Any]:
        """The entry as the page gets it: JSON-ready, its secrets redacted. Made once, then kept.

        Two threads may make it at once; both make the same dict, and either is kept.
        """
        view = self._view
        if view is None:
            view = _redact(self._make_view(), _secrets_longest_first(self.secrets, server_secrets))
            self._view = view
            self.raw = self.answer = None  # what the view holds is all that is needed now
            self.secrets = ()
        return view

    def _make_view(self) -> Dict[str, Any]:
        payload, note = _payload(self.raw)
        return {
            "seq": self.seq,
            "time": self.time,
            "service": self.service,
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason or reason_of(self.status, self.answer),
            "ids": ids_of(payload, self.answer),
            "payload": payload,
            "payloadNote": note,
        }


class ActivityLog:
    """The last ``size`` requests, each numbered from 1 up, and how many ended each way.

    Args:
        size: entries kept; the oldest are forgotten first.
        secrets: the server's own secrets, redacted from every view (a callable, so that the
            relay's reloaded configuration is followed).
    """

    def __init__(self, size: int = MAX_ENTRIES, secrets: Any = tuple) -> None:
        self._entries: Deque[Entry] = collections.deque(maxlen=size)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._server_secrets = secrets
        self._cleared_through = 0  # entries up to this number were cleared, not forgotten for lack of room
        self.outcomes: Dict[str, int] = collections.Counter()

    def add(
        self,
        service: Optional[str],
        method: str,
        route: str,
        status: Optional[int],
        outcome: str,
        *,
        when: Optional[float] = None,
        reason: str = "",
        raw: Optional[bytes] = None,
        answer: Any = None,
        secrets: Iterable[str] = (),
    ) -> int:
        """Log a request: what came (``raw``, kept only if small), what was answered; its number.

        ``reason`` when the caller knows it; else it is read from ``answer`` when first shown.
        ``secrets`` are the request's own (its key), redacted from its view.
        """
        kept: Any = raw if raw is None or len(raw) <= MAX_PAYLOAD_BYTES else len(raw)  # too large: its size alone
        with self._lock:
            seq = next(self._numbers)
            self._entries.append(
                Entry(seq, time.time() if when is None else when, service, method, route, status, outcome, reason, kept, answer, tuple(secrets))
            )
            self.outcomes[outcome] += 1
        return seq

    @property
    def last(self) -> int:
        """The number of the latest entry, 0 before the first."""
        with self._lock:
            return self._entries[-1].seq if self._entries else 0

    def after(self, seq: int, limit: int = MAX_PAGE) -> Tuple[List[Dict[str, Any]], int]:
        """The views of up to ``limit`` entries numbered above ``seq``, oldest first; and how many
        numbered above ``seq`` were forgotten before they could be read (0 for a page keeping up)."""
        with self._lock:
            if not self._entries:
                return [], 0
            first = self._entries[0].seq
            start = max(seq - first + 1, 0)
            chosen = list(itertools.islice(self._entries, start, start + max(limit, 0)))
            missed = max(first - max(seq, self._cleared_through) - 1, 0)
        secrets = tuple(self._server_secrets())
        return [entry.view(secrets) for entry in chosen], missed

    def clear(self) -> None:
        """Forget the entries and outcomes; numbering goes on, so a page polling ``after`` misses nothing new."""
        with self._lock:
            if self._entries:
                self._cleared_through = self._entries[-1].seq
            self._entries.clear()
            self.outcomes = collections.Counter()


class Tally:
    """What the accepted payloads add up to: sessions, events, playtime, by minute and by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._sessions = 0
            self._events = 0
            self._playtime = 0
            self._durations = [0] * (len(DURATION_BUCKETS) + 1)
            self._names: Dict[str, int] = collections.Counter()
            self._minutes: "collections.OrderedDict[int, List[int]]" = collections.OrderedDict()  # minute: [sessions, events]

    def session(self, seconds: int, when: float) -> None:
        bucket = next((index for index, (bound, _) in enumerate(DURATION_BUCKETS) if seconds < bound), len(DURATION_BUCKETS))
        with self._lock:
            self._sessions += 1
            self._playtime += seconds
            self._durations[bucket] += 1
            self._minute(when)[0] += 1

    def event(self, name: str, when: float) -> None:
        with self._lock:
            self._events += 1
            if name not in self._names and len(self._names) >= MAX_EVENT_NAMES:
                name = "(other)"
            self._names[name] += 1
            self._minute(when)[1] += 1

    def _minute(self, when: float) -> List[int]:
        minute = int(when // 60)
        counts = self._minutes.get(minute)
        if counts is None:
            counts = self._minutes[minute] = [0, 0]
            while len(self._minutes) > MINUTES_SHOWN + 1:
                self._minutes.popitem(last=False)
        return counts

    def snapshot(self, now: Optional[float] = None) -> Dict[str, Any]:
        """Totals, the last ``MINUTES_SHOWN`` minutes (oldest first, empty ones included), the
        durations' histogram and the ten most frequent event names."""
        this_minute = int((time.time() if now is None else now) // 60)
        with self._lock:
            minutes = [
                {"minute": minute * 60, "sessions": counts[0], "events": counts[1]}
                for minute in range(this_minute - MINUTES_SHOWN + 1, this_minute + 1)
                for counts in (self._minutes.get(minute, (0, 0)),)
            ]
            labels = [label for _, label in DURATION_BUCKETS] + [LONGEST_BUCKET]
            return {
                "sessions": self._sessions,
                "events": self._events,
                "playtimeSeconds": self._playtime,
                "perMinute": minutes,
                "durations": [{"label": label, "count": count} for label, count in zip(labels, self._durations)],
                "topEvents": [{"name": name, "count": count} for name, count in self._names.most_common(10)],
            }


def reason_of(status: Optional[int], answer: Any) -> str:
    """Why a request was answered as it was, in a line, from the answer's body in either service's shape."""
    if status is None:
        return "the connection was closed without an answer (scripted fault)"
    if not isinstance(answer, Mapping):
        return ""
    if isinstance(answer.get("errorMessage"), str):  # PlayFab's error, also when wrapped in a 200
        details = answer.get("errorDetails")
        text = f"{answer.get('error')}: {answer['errorMessage']}"
        if isinstance(details, Mapping):
            text += "".join(f"; {field}: {', '.join(map(str, rules))}" for field, rules in details.items())
        return text
    if isinstance(answer.get("code"), str):  # PlayCamp's error
        details = answer.get("details")
        if isinstance(details, list) and details and isinstance(details[0], Mapping):
            return f"{answer['code']}: {details[0].get('path')}: {details[0].get('message')}"
        return f"{answer['code']}: {answer.get('error')}"
    data = answer.get("data")
    if isinstance(data, Mapping):
        if data.get("recorded") is False:
            return "already recorded: the first row is kept"
        failed = data.get("failed")
        if isinstance(failed, int) and failed:
            first = next((r.get("error") for r in data.get("results", ()) if isinstance(r, Mapping) and r.get("error")), "")
            return f"{failed} of {data.get('totalRequested')} sessions failed: {first}"
        if data.get("queued"):
            return "stored, to be forwarded"
    if isinstance(answer.get("error"), str):
        return answer["error"]
    return ""


def ids_of(payload: Any, answer: Any) -> Dict[str, Any]:
    """What the table shows of a payload: its sessions and players, or its event's name and id."""
    ids: Dict[str, Any] = {}
    if not isinstance(payload, Mapping):
        return ids
    sessions = payload.get("sessions") if isinstance(payload.get("sessions"), list) else [payload]
    sessions = [s for s in sessions if isinstance(s, Mapping) and "sessionId" in s]
    if sessions:
        ids["sessionIds"] = [s["sessionId"] for s in sessions]
        ids["userIds"] = sorted({s["userId"] for s in sessions if isinstance(s.get("userId"), str)})
        seconds = [s["durationSeconds"] for s in sessions if type(s.get("durationSeconds")) is int]
        ids["durationSeconds"] = sum(seconds)
    if "EventName" in payload:
        ids["eventName"] = payload["EventName"]
        ids["userIds"] = [payload["PlayFabId"]] if isinstance(payload.get("PlayFabId"), str) else []
        data = answer.get("data") if isinstance(answer, Mapping) else None
        body = payload.get("Body")
        if isinstance(data, Mapping) and data.get("EventId"):
            ids["eventId"] = data["EventId"]
        elif isinstance(body, Mapping) and body.get("playhooks_event_id"):
            ids["eventId"] = body["playhooks_event_id"]
    return ids


def _payload(raw: Any) -> Tuple[Any, str]:
    """The body (bytes, or the size of one too large to keep) as JSON if it is, with a note when it
    is not shown whole."""
    if raw is None:
        return None, ""
    if isinstance(raw, int):
        return None, f"a body of {raw} bytes: over {MAX_PAYLOAD_BYTES // 1024} KiB, not kept"
    if raw == b"":
        return None, "no body"
    try:
        return parse_json(raw), ""
    except ValueError:
        text = raw[:MAX_RAW_TEXT].decode("utf-8", "replace")
        return text, f"not JSON ({len(raw)} bytes), shown as text"


def _secrets_longest_first(own: Iterable[str], server: Iterable[str]) -> Tuple[str, ...]:
    """Each secret and its parts (the token of ``Bearer token``, the secret of ``keyId:secret``).

    Longest first: a value that contains another (a "keyId:secret" and its secret) goes whole.
    """
    found = set()
    for secret in itertools.chain(own, server):
        token = secret.partition(" ")[2].strip() if " " in secret else secret
        found.update((secret, token, token.partition(":")[2]))
    found.discard("")
    return tuple(sorted(found, key=len, reverse=True))


def _redact(value: Any, secrets: Tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {
            _redact(key, secrets): REDACTED if _is_secret_field(key) else _redact(item, secrets) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item, secrets) for item in value]
    return value


def _is_secret_field(name: Any) -> bool:
    return isinstance(name, str) and name.lower().replace("-", "").replace("_", "") in SECRET_FIELDS
