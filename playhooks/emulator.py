"""A local emulator of the two APIs playhooks sends to, for development, tests and demos.

    from playhooks.emulator import Emulator

    with Emulator() as emulator:                 # serves on 127.0.0.1, a free port
        ...point PlayCamp and PlayFab at emulator.url...
        emulator.fail_next(2, status=503)        # scripted faults
        assert emulator.sessions[0]["userId"] == "player-1"

It answers as the real services do (``spec/`` in the design documents): PlayCamp's
``POST /v1/server/playtime/sessions`` (and ``/bulk``) and PlayFab's
``POST /Server/WriteCharacterEvent``, with the same validation, error bodies and idempotency. It
validates with the same models and parser as the client, so the two cannot drift apart.

Choices where the services' documentation is silent (each is what the emulator does, and what the
client must cope with):

- PlayCamp answers a newly recorded session with 201 and a repeated ``sessionId`` with 200 and
  ``"recorded": false`` (the first row is kept); a bulk request with 200. Its validation errors are
  ``{"code": "VALIDATION_ERROR", "error": "Validation Error", "details": [{"message", "path",
  "target": "body"}]}``, one detail for the first broken rule. ``isTest`` sessions are validated and
  answered but not stored, as "test mode: creates no actual data" says.
- PlayFab answers a missing ``X-SecretKey`` with 401 ``NotAuthenticated`` (1074) and an unknown one
  with 401 ``NotAuthorized`` (1089); a field that breaks a rule with 400 ``InvalidParams`` (1000)
  and ``errorDetails`` for that field; a body that is not JSON with 400 ``InvalidRequest`` (1071).
- Rate limits count requests per key in a sliding window; PlayCamp's 429 is
  ``{"code": "RATE_LIMITED", ...}`` with ``Retry-After``.
- Scripted faults stand for the network and the infrastructure in front of the service: a status
  fault is answered with that HTTP status even when PlayFab's ``X-ReportErrorAsSuccess`` is set.

Inspection lives under ``/_emulator/``, a prefix no real API uses, where faults, rate limits and
the added latency never apply: ``GET sessions``, ``events``, ``rejected``, ``requests`` (headers,
secrets redacted), ``counters``, ``in_flight``, ``max_in_flight``; ``POST reset`` and
``POST faults`` (a fault as JSON).

``GET /_emulator/`` is the live page (``page_url``): every API request as it is answered, with its
payload (secrets redacted) and a tally of sessions, playtime and events. It polls
``GET /_emulator/activity?after=N`` for the requests numbered above N (``activity`` in Python).
"""

import collections
import functools
import http
import json
import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, TextIO, Tuple

import attrs

from . import _live_page, _wire
from ._api import (
    STATUS_LINES,
    bulk_envelope_problem,
    is_json,
    parse_json,
    playcamp_body,
    playcamp_code,
    playcamp_validation_body,
    playfab_error_body,
)
from ._activity import ACCEPTED, DROPPED, REJECTED, ActivityLog, Tally
from ._errors import PayloadError
from ._faults import DEFAULT_HANG_SECONDS, ROUTE_GROUPS, Fault, FaultPlan
from ._models import (
    BulkItemResult,
    BulkPlaytimeResult,
    CharacterEvent,
    CharacterEventResult,
    PlaytimeSession,
    PlaytimeSessionResult,
)
from ._ratelimit import RateLimiter
from ._server import DropConnection, ServerThread

__all__ = ["Emulator"]

log = logging.getLogger("playhooks.emulator")

PLAYCAMP_SESSIONS = "/v1/server/playtime/sessions"
PLAYCAMP_BULK = "/v1/server/playtime/sessions/bulk"
PLAYFAB_EVENT = "/Server/WriteCharacterEvent"
INSPECTION = "/_emulator/"
SERVICES = tuple(ROUTE_GROUPS)  # "playcamp", "playfab": what in_flight and max_in_flight count by
_SERVICE_OF = {path: service for service, paths in ROUTE_GROUPS.items() for path in paths}

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_REQUEST_LOG = 1000
SECRET_HEADERS = frozenset({"authorization", "x-secretkey", "x-entitytoken", "cookie"})
_SECRET_KEYS = ("HTTP_AUTHORIZATION", "HTTP_X_SECRETKEY", "HTTP_X_ENTITYTOKEN", "HTTP_COOKIE")  # as environ names them

Headers = List[Tuple[str, str]]


@attrs.frozen
class _Reply:
    status: int
    body: Any
    headers: Tuple[Tuple[str, str], ...] = ()


class _Refused(Exception):
    """An answer other than success, raised from deep in a handler."""

    def __init__(self, reply: _Reply) -> None:
        self.reply = reply


class Emulator:
    """PlayCamp and PlayFab on loopback: a WSGI application, and a server for it on a thread.

    Args:
        host, port: where ``start`` (or ``with``) listens; port 0 picks a free one.
        playcamp_keys: the accepted PlayCamp server keys (``"keyId:secret"``); None accepts any
            well-formed key.
        playcamp_client_keys: read-only client keys, answered 403 on these server endpoints.
        playfab_secret_keys: the accepted PlayFab secret keys; None accepts any non-empty one.
        characters: PlayFab players and their characters (``{"PlayFabId": ["CharacterId"]}``);
            when given, an unknown player is ``AccountNotFound`` and an unknown character
            ``CharacterNotFound``.
        rate_limit: requests allowed per key in each ``rate_window`` seconds (at least 1); None
            for no limit.
        fault_rate, seed: the share of API requests answered with a random fault, repeatably.
        record: a file to append each accepted payload to, one JSON line each; opened by ``start``.
        latency: seconds every API request waits before it is handled, as over a real network.
            Each waits on its own connection's thread: other connections go on meanwhile.

    Raises:
        ValueError: a rate limit, rate window, fault rate or latency that cannot be applied.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        playcamp_keys: Optional[Iterable[str]] = None,
        playcamp_client_keys: Iterable[str] = (),
        playfab_secret_keys: Optional[Iterable[str]] = None,
        characters: Optional[Mapping[str, Iterable[str]]] = None,
        rate_limit: Optional[int] = None,
        rate_window: float = 1.0,
        fault_rate: float = 0.0,
        seed: Optional[int] = None,
        record: Optional[str] = None,
        latency: float = 0.0,
    ) -> None:
        if type(latency) not in (int, float) or not 0 <= latency <= threading.TIMEOUT_MAX:
            raise ValueError(f"latency: must be a number of seconds >= 0 (got {latency!r})")
        self._latency = latency
        self._host, self._port = host, port
        self._playcamp_keys = None if playcamp_keys is None else frozenset(playcamp_keys)
        self._playcamp_client_keys = frozenset(playcamp_client_keys)
        self._playfab_keys = None if playfab_secret_keys is None else frozenset(playfab_secret_keys)
        self._characters = None if characters is None else {p: frozenset(c) for p, c in characters.items()}
        self._limiter = RateLimiter(rate_limit, rate_window) if rate_limit is not None else None
        self._faults = FaultPlan(fault_rate, seed)
        self._record_path = record
        self._record_file: Optional[TextIO] = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified as each API request arrives and is answered
        self._stopped = threading.Event()
        self._in_flight: Dict[str, int] = dict.fromkeys(SERVICES, 0)  # outlives a reset: those requests still end
        self._server: Optional[ServerThread] = None
        self._server_url = ""  # where it served last: a test can check that nothing answers there
        # The live page's: apart from _clear's, since a page polling across a reset must see the
        # numbers go on rather than start again.
        secrets = (*(self._playcamp_keys or ()), *self._playcamp_client_keys, *(self._playfab_keys or ()))
        self._activity = ActivityLog(secrets=lambda: secrets)
        self._tally = Tally()
        self._clear()

    def _clear(self) -> None:
        self._sessions: Dict[str, Dict[str, Any]] = {}  # by sessionId, in arrival order
        self._kept: Dict[str, PlaytimeSession] = {}
        self._created: Dict[str, datetime] = {}
        self._events: List[Dict[str, Any]] = []
        self._rejected: List[Dict[str, Any]] = []
        self._requests: Deque[Dict[str, Any]] = collections.deque(maxlen=MAX_REQUEST_LOG)  # the last ones
        self._counters: Dict[str, int] = dict.fromkeys(
            ("requests", "sessions", "duplicates", "events", "rejected", "rateLimited", "faults"), 0
        )
        self._max_in_flight = dict(self._in_flight)

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> "Emulator":
        """Serve on a background thread; ``url`` then says where.

        Raises:
            OSError: the address cannot be listened on, or the record file cannot be appended to.
        """
        self._stopped.clear()
        _wire.prepare()  # the converters, now: not in the first request's time
        if self._record_path is not None:
            self._record_file = open(self._record_path, "a", encoding="utf-8")
        try:
            self._server = ServerThread(self, self._host, self._port, max_body_bytes=MAX_BODY_BYTES).start()
        except BaseException:
            self._close_record()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, releasing any request a ``hang`` fault holds."""
        self._stopped.set()
        if self._server is not None:
            self._server_url = self._server.url
            self._server.stop()
            self._server = None
        with self._lock:  # a request still finishing may be writing to it
            self._close_record()

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:51234``, with no trailing slash."""
        if self._server is None:
            raise RuntimeError("the emulator is not serving: call start() or use it in a with block")
        return self._server.url

    # -- what it recorded ------------------------------------------------------------------------

    @property
    def sessions(self) -> List[Dict[str, Any]]:
        """Accepted PlayCamp sessions, once per ``sessionId``, as the request bodies held them."""
        with self._lock:
            return list(self._sessions.values())

    @property
    def events(self) -> List[Dict[str, Any]]:
        """Accepted PlayFab events, each time one was accepted, as the request bodies held them."""
        with self._lock:
            return list(self._events)

    @property
    def rejected(self) -> List[Dict[str, Any]]:
        """Refused requests: ``path``, ``status`` and the error ``reply`` sent."""
        with self._lock:
            return list(self._rejected)

    @property
    def requests(self) -> List[Dict[str, Any]]:
        """The last requests' method, path, headers (secrets redacted) and arrival ``time``."""
        with self._lock:
            return list(self._requests)

    @property
    def page_url(self) -> str:
        """The live page's address, such as ``http://127.0.0.1:51234/_emulator/``."""
        return self.url + INSPECTION

    def activity(self, after: int = 0, limit: int = 500) -> List[Dict[str, Any]]:
        """The API requests numbered above ``after`` (the live page's rows), oldest first, at most ``limit``.

        Each has its ``seq``, ``time``, ``service``, ``method``, ``route``, ``status`` (None for a
        connection dropped by a fault), ``outcome`` (``accepted``, ``rejected``, ``dropped``),
        ``reason``, ``ids`` and its ``payload`` with every secret redacted. The last few thousand
        are kept; numbers go on across ``reset``.
        """
        return self._activity.after(after, limit)[0]

    @property
    def counters(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._counters)

    @property
    def in_flight(self) -> Dict[str, int]:
        """API requests being handled now, by service (``"playcamp"``, ``"playfab"``).

        A request counts from its arrival until its answer is ready, including while ``latency``, a
        ``delay`` or a ``hang`` fault holds it. A request to an unknown route is not counted.
        """
        with self._lock:
            return dict(self._in_flight)

    @property
    def max_in_flight(self) -> Dict[str, int]:
        """The most API requests handled at once, by service, since the start or the last ``reset``.

        For tests of a client's concurrency: one that keeps at most N requests in flight to a service
        never makes this exceed N. A ``reset`` starts it again from the requests in flight then.
        """
        with self._lock:
            return dict(self._max_in_flight)

    def wait_until(self, predicate: Callable[["Emulator"], bool], timeout: float) -> bool:
        """Wait, for at most ``timeout`` seconds, until ``predicate(emulator)`` holds after a request.

        Looked at again as each API request arrives and as each is answered. For tests:
        ``emulator.wait_until(lambda e: e.counters["duplicates"] == 1, 10)``, or
        ``emulator.wait_until(lambda e: e.in_flight["playcamp"] == 1, 10)`` for a request held by a fault.
        """
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.5))  # also looks again now and then
        return True

    def reset(self) -> None:
        """Forget everything recorded, scripted faults and rate-limit history included.

        Requests still being handled stay in ``in_flight``, and ``max_in_flight`` starts from them.
        """
        with self._lock:
            self._clear()
        self._activity.clear()
        self._tally.clear()
        self._faults.clear()
        if self._limiter is not None:
            self._limiter.reset()

    # -- faults ----------------------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        route: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (and ``headers``, ``body``).

        ``route`` is a path, ``"playcamp"``, ``"playfab"``, or None for every API route. Without a
        body, the answer is in the service's own error shape.
        """
        self._faults.add(Fault("status", count, route, status, dict(headers or {}), body))

    def delay_next(self, count: int = 1, seconds: float = 1.0, *, route: Optional[str] = None) -> None:
        """Answer the next ``count`` requests (on ``route``, as for ``fail_next``) normally, but only after ``seconds``.

        Only those requests wait: other connections are answered meanwhile.
        """
        self._faults.add(Fault("delay", count, route, seconds=seconds))

    def drop_next(self, count: int = 1, *, route: Optional[str] = None) -> None:
        """Close the connection of the next ``count`` requests without answering."""
        self._faults.add(Fault("drop", count, route))

    def hang_next(self, count: int = 1, *, route: Optional[str] = None, seconds: float = DEFAULT_HANG_SECONDS) -> None:
        """Answer nothing to the next ``count`` requests (on ``route``), until ``stop`` or ``seconds`` pass.

        Then their connections are closed. Only those requests are held: other connections go on.
        """
        self._faults.add(Fault("hang", count, route, seconds=seconds))

    # -- the WSGI application --------------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        page = self._page(method, path, environ)
        if page is not None:
            return _live_page.respond(start_response, page, STATUS_LINES)
        try:
            raw = _read_body(environ)
            if path.startswith(INSPECTION):
                reply = self._inspect(method, path[len(INSPECTION) :], raw)
            else:
                reply = self._serve_api(environ, method, path, raw)
        except _Refused as refused:
            reply = refused.reply
        body = b"" if reply.body is None else _wire.encode(reply.body)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *reply.headers]
        start_response(STATUS_LINES[reply.status], headers)
        return [body]

    def _serve_api(self, environ: Dict[str, Any], method: str, path: str, raw: bytes) -> _Reply:
        service = _SERVICE_OF.get(path) if method == "POST" else None
        arrived = self._arrive(environ, method, path, service)
        reply: Optional[_Reply] = None  # None: the connection is dropped without an answer
        try:
            if self._latency:
                self._stopped.wait(self._latency)  # on this connection's thread alone
            if service is None:
                reply = self._playcamp_error(404, "NOT_FOUND", f"no route for {method} {path}")
            else:
                reply = self._serve_route(environ, path, raw)
            return reply
        except DropConnection:
            raise
        except BaseException:  # the server answers 500: the row says so, not "dropped"
            reply = _Reply(500, {"error": "the emulator failed to answer this request"})
            raise
        finally:
            with self._lock:
                if service is not None:
                    self._in_flight[service] -= 1
                self._changed.notify_all()
            # After: the count of requests in flight is what tests wait on, and the page can wait.
            self._log_activity(environ, arrived, service, method, path, raw, reply)

    def _log_activity(
        self, environ: Dict[str, Any], arrived: float, service: Optional[str], method: str, path: str, raw: bytes, reply: Optional[_Reply]
    ) -> None:
        """A row for the live page. Only references are kept: the page's reading does the rest."""
        if reply is None:
            status, outcome, body = None, DROPPED, None
        else:
            rejected = reply.status >= 400 or _is_wrapped_error(reply)
            status, outcome, body = reply.status, REJECTED if rejected else ACCEPTED, reply.body
        secrets = [environ[key] for key in _SECRET_KEYS if key in environ]
        self._activity.add(service, method, path, status, outcome, when=arrived, raw=raw, answer=body, secrets=secrets)

    def _page(self, method: str, path: str, environ: Dict[str, Any]) -> Optional[_live_page.Answer]:
        """The live page's files and JSON, or None for any other path."""
        query = environ.get("QUERY_STRING", "")
        return _live_page.serve(INSPECTION, path, method, query, self._activity, self._tally, "emulator")

    def _serve_route(self, environ: Dict[str, Any], path: str, raw: bytes) -> _Reply:
        routes = {
            PLAYCAMP_SESSIONS: self._playcamp_session,
            PLAYCAMP_BULK: self._playcamp_bulk,
            PLAYFAB_EVENT: self._playfab_event,
        }
        route = routes[path]
        fault = self._faults.take(path)
        if fault is not None:
            with self._lock:
                self._counters["faults"] += 1
            reply = self._apply(fault, path)
            if reply is not None:
                return reply
        try:
            reply = route(environ, raw)
        except _Refused as refused:
            reply = refused.reply
        if reply.status >= 400 or _is_wrapped_error(reply):
            with self._lock:
                self._counters["rejected"] += 1
                self._rejected.append({"path": path, "status": reply.status, "reply": reply.body})
        return reply

    def _apply(self, fault: Fault, path: str) -> Optional[_Reply]:
        """Carry out a fault: an answer to send instead, or None to go on normally (after a delay)."""
        # A wait past TIMEOUT_MAX (days; a fault may script any number) is one the lock cannot take.
        if fault.kind == "delay":
            self._stopped.wait(min(fault.seconds, threading.TIMEOUT_MAX))
            return None
        if fault.kind == "hang":
            self._stopped.wait(min(fault.seconds, threading.TIMEOUT_MAX))
            raise DropConnection()
        if fault.kind == "drop":
            raise DropConnection()
        headers = tuple(fault.headers.items())
        if fault.body is not None:
            return _Reply(fault.status, fault.body, headers)
        if path == PLAYFAB_EVENT:
            return _Reply(fault.status, _playfab_fault_body(fault.status), headers)
        return _Reply(fault.status, playcamp_body(playcamp_code(fault.status), "scripted fault"), headers)

    # -- PlayCamp --------------------------------------------------------------------------------

    def _playcamp_auth(self, environ: Dict[str, Any]) -> str:
        """The key id of a valid server key, or a refusal."""
        scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        key_id, _, secret = key.partition(":")
        if scheme != "Bearer" or not key_id or not secret:
            raise _Refused(self._playcamp_error(401, "UNAUTHORIZED", "Authorization must be 'Bearer keyId:secret'"))
        if key in self._playcamp_client_keys:
            raise _Refused(self._playcamp_error(403, "FORBIDDEN", "a client key cannot call server endpoints"))
        if self._playcamp_keys is not None and key not in self._playcamp_keys:
            raise _Refused(self._playcamp_error(401, "UNAUTHORIZED", "invalid API key"))
        wait = self._rate_limited("playcamp:" + key_id)
        if wait is not None:
            raise _Refused(
                self._playcamp_error(429, "RATE_LIMITED", "Too many requests", headers=(("Retry-After", str(wait)),))
            )
        return key_id

    def _rate_limited(self, key: str) -> Optional[int]:
        """Count a request for ``key``: None if allowed, else the seconds to wait (counted)."""
        wait = self._limiter.check(key) if self._limiter else None
        if wait is not None:
            with self._lock:
                self._counters["rateLimited"] += 1
        return wait

    def _playcamp_json(self, raw: bytes) -> Any:
        try:
            return parse_json(raw)
        except ValueError:
            raise _Refused(self._playcamp_validation("$", "the body must be JSON")) from None

    def _playcamp_session(self, environ: Dict[str, Any], raw: bytes) -> _Reply:
        self._playcamp_auth(environ)
        data = self._playcamp_json(raw)
        try:
            session = _wire.structure(data, PlaytimeSession)
        except PayloadError as error:
            return self._playcamp_validation(error.field, error.rule)
        recorded, kept = self._store_session(data, session)
        result = PlaytimeSessionResult(
            session_id=kept.session_id,
            user_id=kept.user_id,
            duration_seconds=kept.duration_seconds,
            recorded=recorded,
            created_at=self._created.get(kept.session_id, datetime.now(timezone.utc)),
        )
        return _Reply(201 if recorded else 200, _wire.playcamp_envelope(result))

    def _playcamp_bulk(self, environ: Dict[str, Any], raw: bytes) -> _Reply:
        self._playcamp_auth(environ)
        data = self._playcamp_json(raw)
        problem = bulk_envelope_problem(data)
        if problem is not None:
            return self._playcamp_validation(*problem)
        results = []
        for index, item in enumerate(data["sessions"]):
            if data.get("isTest") and isinstance(item, dict):
                item = {**item, "isTest": True}  # a test request creates no data, whatever its items say
            try:
                session = _wire.structure(item, PlaytimeSession)
            except PayloadError as error:
                session_id = item.get("sessionId") if isinstance(item, dict) else None
                results.append(
                    BulkItemResult(
                        session_id=session_id if isinstance(session_id, str) and session_id else f"sessions[{index}]",
                        status="FAILED",
                        error=f"{error.field}: {error.rule}",
                    )
                )
                continue
            recorded, _ = self._store_session(item, session)
            results.append(BulkItemResult(session.session_id, "SUCCESS" if recorded else "SKIPPED"))
        result = BulkPlaytimeResult(
            total_requested=len(results),
            successful=sum(r.status == "SUCCESS" for r in results),
            failed=sum(r.status == "FAILED" for r in results),
            skipped=sum(r.status == "SKIPPED" for r in results),
            results=results,
        )
        return _Reply(200, _wire.playcamp_envelope(result))

    def _store_session(self, data: Dict[str, Any], session: PlaytimeSession) -> Tuple[bool, PlaytimeSession]:
        """Keep a session unless its id was seen; either way, the row PlayCamp now has.

        PlayCamp keeps the first row for a ``sessionId``; isTest sessions are answered, not kept.
        """
        if session.is_test:
            return True, session
        with self._lock:
            if session.session_id in self._sessions:
                self._counters["duplicates"] += 1
                return False, self._kept[session.session_id]
            self._sessions[session.session_id] = data
            self._kept[session.session_id] = session
            self._created[session.session_id] = datetime.now(timezone.utc)
            self._counters["sessions"] += 1
        self._tally.session(session.duration_seconds, time.time())
        self._record("session", data)
        return True, session

    def _playcamp_validation(self, path: str, message: str) -> _Reply:
        return _Reply(400, playcamp_validation_body(path, message))

    def _playcamp_error(self, status: int, code: str, message: str, headers: Tuple[Tuple[str, str], ...] = ()) -> _Reply:
        return _Reply(status, playcamp_body(code, message), headers)

    # -- PlayFab ---------------------------------------------------------------------------------

    def _playfab_event(self, environ: Dict[str, Any], raw: bytes) -> _Reply:
        as_success = environ.get("HTTP_X_REPORTERRORASSUCCESS", "").lower() == "true"
        try:
            event_id = self._accept_playfab_event(environ, raw)
        except _Refused as refused:
            reply = refused.reply
            return _Reply(200, reply.body, reply.headers) if as_success else reply
        return _Reply(200, _wire.playfab_envelope(CharacterEventResult(event_id=event_id)))

    def _accept_playfab_event(self, environ: Dict[str, Any], raw: bytes) -> str:
        secret = environ.get("HTTP_X_SECRETKEY", "")
        if not secret:
            raise _Refused(_playfab_error(401, "NotAuthenticated", 1074, "This API method does not allow anonymous callers."))
        if self._playfab_keys is not None and secret not in self._playfab_keys:
            raise _Refused(_playfab_error(401, "NotAuthorized", 1089, "Invalid secret key"))
        wait = self._rate_limited("playfab:" + secret)
        if wait is not None:
            raise _Refused(
                _playfab_error(
                    429,
                    "APIClientRequestRateLimitExceeded",
                    1199,
                    "The client has exceeded the maximum API request rate and is being throttled",
                    retry_after_seconds=wait,
                    headers=(("Retry-After", str(wait)),),
                )
            )
        if not is_json(environ):
            raise _Refused(_playfab_error(400, "InvalidContentType", 1144, "Content-Type must be application/json"))
        try:
            data = parse_json(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            raise _Refused(_playfab_error(400, "InvalidRequest", 1071, "The request body is not a JSON object")) from None
        try:
            event = _wire.structure(data, CharacterEvent)
        except PayloadError as error:
            raise _Refused(
                _playfab_error(400, "InvalidParams", 1000, "Invalid input parameters", details={error.field: (error.rule,)})
            ) from None
        if self._characters is not None:
            if event.playfab_id not in self._characters:
                raise _Refused(_playfab_error(400, "AccountNotFound", 1001, "User not found"))
            if event.character_id not in self._characters[event.playfab_id]:
                raise _Refused(_playfab_error(400, "CharacterNotFound", 1135, "Character not found"))
        with self._lock:
            self._events.append(data)
            self._counters["events"] += 1
        self._tally.event(event.event_name, time.time())
        self._record("event", data)
        return uuid.uuid4().hex.upper()

    # -- inspection ------------------------------------------------------------------------------

    def _inspect(self, method: str, name: str, raw: bytes) -> _Reply:
        if method == "GET" and name in ("sessions", "events", "rejected", "requests", "counters", "in_flight", "max_in_flight"):
            return _Reply(200, {name: getattr(self, name)})
        if method == "POST" and name == "reset":
            self.reset()
            return _Reply(200, {"reset": True})
        if method == "POST" and name == "faults":
            try:
                spec = parse_json(raw)
                self._faults.add(Fault(**spec))
            except (ValueError, TypeError) as error:
                return _Reply(400, {"error": f"bad fault: {error}"})
            return _Reply(200, {"scripted": spec})
        return _Reply(404, {"error": f"no inspection route {method} {INSPECTION}{name}"})

    def _arrive(self, environ: Dict[str, Any], method: str, path: str, service: Optional[str]) -> float:
        """Log an API request (its secrets redacted) and, if it is for a service, count it in flight; when it came."""
        headers = {}
        for key, value in environ.items():
            name, secret = _header_name(key)
            if name:
                headers[name] = "<redacted>" if secret else value
        now = time.time()
        with self._lock:
            self._counters["requests"] += 1
            self._requests.append({"method": method, "path": path, "headers": headers, "time": now})
            if service is not None:
                self._in_flight[service] += 1
                self._max_in_flight[service] = max(self._max_in_flight[service], self._in_flight[service])
                self._changed.notify_all()
        return now

    def _record(self, kind: str, data: Dict[str, Any]) -> None:
        if self._record_file is None:  # looked at again under the lock: this only spares the JSON
            return
        line = json.dumps({"kind": kind, "payload": data}, ensure_ascii=False) + "\n"
        with self._lock:
            if self._record_file is None:
                return
            try:
                self._record_file.write(line)
                self._record_file.flush()  # a line is in the file by the time its request is answered
            except OSError as error:
                # The payload is stored and its answer stands. Recording stops rather than leave gaps,
                # and says so once, not once per request.
                log.error("cannot write to the record %s (%s): recording stops here", self._record_path, error)
                self._close_record()

    def _close_record(self) -> None:
        if self._record_file is not None:
            try:
                self._record_file.close()
            except OSError:
                pass  # the line that could not be written, flushed again: already reported
            self._record_file = None

    def __repr__(self) -> str:
        where = self._server.url if self._server is not None else "not serving"
        return f"<Emulator {where}>"


@functools.lru_cache(maxsize=256)
def _header_name(key: str) -> Tuple[str, bool]:
    """A request header's name from its environ key (``HTTP_X_SECRETKEY`` is ``X-Secretkey``), or "" for
    a key that is not a header; and whether its value is a secret, never to be listed."""
    if key.startswith("HTTP_"):
        key = key[5:]
    elif key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return "", False
    name = "-".join(part.capitalize() for part in key.split("_"))
    return name, name.lower() in SECRET_HEADERS


def _read_body(environ: Dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:  # under another server, which must then close or drain the connection
        raise _Refused(_Reply(413, {"error": f"the body is over {MAX_BODY_BYTES} bytes"}))
    return environ["wsgi.input"].read(length) if length > 0 else b""


# PlayFab's error name and code for the statuses a fault may script (the rest: the status phrase,
# with InvalidRequest's code for a 4xx and ServiceUnavailable's for a 5xx).
_PLAYFAB_FAULTS = {
    429: ("APIClientRequestRateLimitExceeded", 1199),
    500: ("InternalServerError", 1110),
    503: ("ServiceUnavailable", 1123),
}


def _playfab_error(status: int, *arguments: Any, headers: Tuple[Tuple[str, str], ...] = (), **options: Any) -> _Reply:
    """PlayFab's error body (``_api.playfab_error_body``) as the emulator's answer, with ``headers``."""
    return _Reply(status, playfab_error_body(status, *arguments, **options), headers)


def _playfab_fault_body(status: int) -> Dict[str, Any]:
    phrase = http.HTTPStatus(status).phrase.replace(" ", "")
    error, code = _PLAYFAB_FAULTS.get(status, (phrase, 1071 if status < 500 else 1123))
    return _playfab_error(status, error, code, "scripted fault").body


def _is_wrapped_error(reply: _Reply) -> bool:
    """A PlayFab error answered as HTTP 200 (``X-ReportErrorAsSuccess``) is still a rejection."""
    return isinstance(reply.body, dict) and isinstance(reply.body.get("code"), int) and reply.body["code"] >= 400
