"""The relay's WSGI application: the services' routes for games, and its own for operators.

A request from a game goes through, in order: its ingest key (401, 403), the key's rate (429),
the body's size (413), type (415) and JSON (400), the services' own validation (400), the
relay's patterns and plausibility (400), the player's rate (429); then it is stored (503 if it
cannot be) and only then answered 2xx. Every refusal is answered in the service's own error shape,
counted by reason in ``/metrics``, and logged without the key, any secret or the player's id.

    GET /livez     the process is up (checks nothing else)
    GET /readyz    the store takes writes, the backend answers, the config is loaded
    GET /metrics   Prometheus text, summed over the worker processes sharing the spool folder
    GET /_relay/live/           the live page: what games sent, refused and why, what was forwarded
    GET /_relay/live/activity   its feed (``?after=N``), as the emulator's

The live page is for operators: loopback clients see it (unless ``[live] loopback = false``), and
others only with the admin key (``[live] admin_key_env``), else 404 (no key configured), 401 (a
browser then asks for it) or 403 (a wrong one). A request that came through a proxy (it carries
``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP``) is never taken for a local one. Each worker
process shows what it served itself. Ingest keys and the services' secrets are redacted from it.
"""

import base64
import binascii
import hmac

import collections
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from .. import _live_page, _wire
from .._activity import ACCEPTED, FORWARDED, REJECTED, UPSTREAM_ERROR, ActivityLog, Tally
from .._api import (
    STATUS_LINES,
    bulk_envelope_problem,
    is_json,
    parse_json,
    playcamp_body,
    playcamp_validation_body,
    playfab_error_body,
)
from .._errors import ConfigurationError, PayloadError
from .._payloads import EVENT_ID_KEY
from .._retry import RetryPolicy
from .._services import PLAYCAMP_BULK, PLAYCAMP_SESSIONS, PLAYFAB_EVENT
from ._config import RelayConfig, key_digest, load_config
from ._limits import Problem, WindowLimiter, event_problem, id_problem, session_problem, utc_now
from ._metrics import Metrics
from ._store import UNAVAILABLE_RETRY_AFTER, Store, Unavailable

log = logging.getLogger("playhooks.relay")

CHALLENGE = 'Bearer realm="playhooks-relay"'
LIVE = "/_relay/live/"
LIVE_CHALLENGE = 'Basic realm="playhooks relay live page", charset="UTF-8"'
_BODY = "playhooks.relay.body"  # where a request's body is kept in its environ, for the live page
_PROXY_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")
CONFIG_CHECK_SECONDS = 1.0  # how often the config file is looked at for changes
_RECENT_IDS = 100_000  # payload ids remembered per service, so a game's retry is not forwarded twice
_PLAYCAMP_CODES = {
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}
# PlayFab's (error, errorCode) for each refusal, as its SDKs know them.
_PLAYFAB_CODES = {
    401: ("NotAuthenticated", 1074),
    403: ("NotAuthorized", 1089),
    413: ("InvalidRequest", 1071),
    415: ("InvalidContentType", 1144),
    429: ("APIClientRequestRateLimitExceeded", 1199),
    503: ("ServiceUnavailable", 1123),
}

Answer = Tuple[int, Any, List[Tuple[str, str]]]  # status, JSON body, extra headers


class _Refusal(Exception):
    """A request refused: its status, the reason it is counted under, and what the client is told."""

    def __init__(
        self, status: int, reason: str, message: str, *, field: str = "$", retry_after: Optional[int] = None, challenge: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.field = status, reason, message, field
        self.retry_after, self.challenge = retry_after, challenge


class _Recent:
    """The ids last stored, per service: a game that retries after a lost answer is not stored twice."""

    def __init__(self, size: int = _RECENT_IDS) -> None:
        self._ids: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._ids

    def add(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._ids[key] = None
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)


class Relay:
    """The relay, as a WSGI application (``relay(environ, start_response)``).

    Args:
        config: the relay's configuration (``load_config``), or the path of its TOML file.
        spool_dir: overrides the config's ``[spool] dir``.
        policy: retry rules towards the services.
        clock: wall seconds, for the plausibility checks.

    Raises:
        ConfigurationError: the configuration cannot be used.

    ``start()`` begins forwarding and watching the config file; ``close(timeout)`` stops both.
    ``reload()`` reads the file again (SIGHUP does, under ``playhooks relay``): ingest keys and
    limits change at once; a change of upstreams needs a restart, and says so.
    """

    def __init__(
        self,
        config: Any,
        *,
        spool_dir: Optional[str] = None,
        policy: Optional[RetryPolicy] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config: RelayConfig = load_config(os.fspath(config)) if isinstance(config, (str, os.PathLike)) else config
        self._clock = clock
        self._activity = ActivityLog(secrets=self._secrets)  # before the store, which counts into it
        self._tally = Tally()
        self._config_seen = _file_state(self.config.path)
        _wire.prepare()
        self.store = Store(self.config, self._count, spool_dir, policy)
        self.metrics = Metrics(os.path.join(self.store.folder, "metrics"), self.store.owner, is_alive=self.store.owner_is_alive)
        self._recent = {service: _Recent() for service in self.config.upstreams}
        self._limiters = self._make_limiters(self.config)
        self._stopped = threading.Event()
        self._said: Set[Tuple[str, str]] = set()  # kinds of refusal logged once already
        self._store_failing = False
        self._watcher: Optional[threading.Thread] = None
        self._routes: Dict[str, Callable[[Dict[str, Any]], Answer]] = {
            PLAYCAMP_SESSIONS: self._session,
            PLAYCAMP_BULK: self._bulk,
            PLAYFAB_EVENT: self._event,
        }

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> "Relay":
        self.store.start()
        self.metrics.start()
        self._watcher = threading.Thread(target=self._watch_config, name="playhooks-relay-config", daemon=True)
        self._watcher.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self.store.close(timeout)
        self.metrics.close()

    def reload(self) -> bool:
        """Read the config file again; on any error keep the current one (logged, counted)."""
        self._config_seen = _file_state(self.config.path)
        try:
            config = load_config(self.config.path)
        except ConfigurationError as error:
            log.error("playhooks relay: config not reloaded, the current one stays: %s", error)
            self.metrics.count("config_reloads", result="failed")
            return False
        if config.upstreams != self.config.upstreams or config.redis != self.config.redis:
            log.warning("playhooks relay: the upstreams or the backend changed: they take effect on a restart")
        self._limiters = self._make_limiters(config)
        self.config = config
        self.metrics.count("config_reloads", result="ok")
        log.info("playhooks relay: config reloaded: %d ingest key(s)", len(config.keys))
        return True

    def _watch_config(self) -> None:
        while not self._stopped.wait(CONFIG_CHECK_SECONDS):
            if _file_state(self.config.path) != self._config_seen:
                self.reload()

    def _make_limiters(self, config: RelayConfig) -> Tuple[Any, Any]:
        limits = config.limits
        if self.store.redis is not None:
            from ._redis import RedisRateLimiter

            prefix = config.redis.prefix if config.redis else "playhooks"
            return (
                RedisRateLimiter(self.store.redis, limits.requests_per_second_per_key, prefix=prefix + ":rate:key"),
                RedisRateLimiter(self.store.redis, limits.requests_per_second_per_player, prefix=prefix + ":rate:player"),
            )
        return WindowLimiter(limits.requests_per_second_per_key), WindowLimiter(limits.requests_per_second_per_player)

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        route = self._routes.get(path)
        if route is None:
            if path.startswith(LIVE) or path == LIVE.rstrip("/"):
                return _live_page.respond(start_response, self._live(environ, path, method), STATUS_LINES)
            return self._operations(path, method, start_response)
        service = "playfab" if path == PLAYFAB_EVENT else "playcamp"
        if method != "POST":
            return _respond(start_response, 405, {"error": "only POST"}, [("Allow", "POST")])
        arrived = time.time()
        reason = ""
        try:
            status, body, headers = route(environ)
        except _Refusal as refusal:
            self._count("rejected", service=service, reason=refusal.reason)
            self._say_refused(path, refusal)
            status, body, headers = _refusal_answer(service, refusal)
            reason = f"{refusal.reason}: {refusal.message}" + ("" if refusal.field == "$" else f" ({refusal.field})")
        outcome = REJECTED if status >= 400 else ACCEPTED
        own = [environ["HTTP_AUTHORIZATION"]] if "HTTP_AUTHORIZATION" in environ else []  # the game's ingest key
        self._activity.add(service, method, path, status, outcome, when=arrived, reason=reason, raw=environ.get(_BODY), answer=body, secrets=own)
        return _respond(start_response, status, body, headers)

    # -- the live page ---------------------------------------------------------------------------

    def _live(self, environ: Dict[str, Any], path: str, method: str) -> _live_page.Answer:
        refused = self._live_refusal(environ)
        if refused is not None:
            return refused
        answer = _live_page.serve(LIVE, path, method, environ.get("QUERY_STRING", ""), self._activity, self._tally, "relay")
        if answer is not None:
            return answer
        if method not in ("GET", "HEAD"):
            return _live_page.json_answer(405, {"error": "only GET"})
        return _live_page.json_answer(404, {"error": f"no route {path}"})

    def _live_refusal(self, environ: Dict[str, Any]) -> Optional[_live_page.Answer]:
        """None for a client that may see the live page; else the answer that turns it away."""
        live = self.config.live
        if live.loopback and _is_local(environ):
            return None
        if live.admin_key is None:
            return _live_page.json_answer(404, {"error": f"no route {environ.get('PATH_INFO', '')}"})  # no page, for them
        presented = _presented_admin_key(environ.get("HTTP_AUTHORIZATION", ""))
        if presented is None:
            status, headers, body = _live_page.json_answer(401, {"error": "the live page needs the relay's admin key"})
            return status, [*headers, ("WWW-Authenticate", LIVE_CHALLENGE)], body
        if not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), live.admin_key.encode("utf-8")):
            return _live_page.json_answer(403, {"error": "not the relay's admin key"})
        return None

    def _secrets(self) -> Iterable[str]:
        """What the live page must never show, from the config in force."""
        config = self.config
        yield from (upstream.secret for upstream in config.upstreams.values())
        if config.live.admin_key:
            yield config.live.admin_key

    def _operations(self, path: str, method: str, start_response: Callable[..., Any]) -> List[bytes]:
        if path not in ("/livez", "/readyz", "/metrics"):
            return _respond(start_response, 404, {"error": f"no route {path}"})
        if method not in ("GET", "HEAD"):
            return _respond(start_response, 405, {"error": "only GET"}, [("Allow", "GET, HEAD")])
        if path == "/livez":
            return _respond(start_response, 200, {"live": True})
        if path == "/readyz":
            problems = self._problems()
            return _respond(start_response, 503 if problems else 200, {"ready": not problems, "problems": problems})
        text = self.metrics.render(self._gauges()).encode("utf-8")
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Content-Length", str(len(text)))])
        return [text]

    def _problems(self) -> List[str]:
        try:
            problems = self.store.problems()
        except Exception as error:  # a readiness probe answers, whatever the store does
            problems = [f"the store cannot be checked ({type(error).__name__})"]
        if self._watcher is None or not self._watcher.is_alive():
            problems.append("the relay is not started")
        return problems

    def _gauges(self) -> Iterable[Tuple[str, str, Dict[str, str], float]]:
        yield "playhooks_relay_ready", "1 if the relay can store payloads now", {}, 0.0 if self._problems() else 1.0
        try:
            backlog = list(self.store.backlog())
        except Exception:
            backlog = []
        for service, pending, oldest in backlog:
            labels = {"service": service}
            yield "playhooks_relay_pending", "Payloads stored, not yet forwarded", labels, float(pending)
            yield "playhooks_relay_oldest_pending_seconds", "Age of the oldest payload not yet forwarded", labels, oldest or 0.0

    def _count(self, name: str, amount: int = 1, **labels: str) -> None:
        self.metrics.count(name, amount, **labels)
        # The store counts each record forwarded and each failed attempt: rows for the live page.
        if name == "forwarded":
            self._activity.add(labels.get("service"), "", f"forwarded to {labels.get('service')}", None, FORWARDED, reason="the service took it")
        elif name == "upstream_errors":
            status = labels.get("status", "")
            code = int(status) if status.isdigit() else None
            why = f"the service answered {status}" if code is not None else "no answer from the service"
            self._activity.add(labels.get("service"), "", f"forwarded to {labels.get('service')}", code, UPSTREAM_ERROR, reason=why + ": retried later or kept as a dead letter")

    def _say_refused(self, path: str, refusal: _Refusal) -> None:
        """The first refusal of each kind at INFO, the rest at DEBUG: a client that sends garbage
        all day must not fill the log. /metrics counts every one."""
        kind = (path, refusal.reason)
        first = kind not in self._said
        self._said.add(kind)
        level = logging.INFO if first else logging.DEBUG
        more = " (more like it are counted, not logged)" if first else ""
        log.log(level, "refused POST %s: %d %s (%s)%s", path, refusal.status, refusal.reason, refusal.message, more)

    # -- the services' routes --------------------------------------------------------------------

    def _session(self, environ: Dict[str, Any]) -> Answer:
        self._authorize(environ, "playcamp")
        data = self._json(environ)
        if not isinstance(data, dict):
            raise _Refusal(400, "invalid", "must be a JSON object")
        session, problem = self._check_session(data)
        if problem is not None:
            reason, field, rule = problem
            raise _Refusal(400, reason, rule, field=field)
        self._limit_players([session.user_id])
        self._store("playcamp", [(session.session_id, "session", data)])
        # Not the userId: a player's id appears in no answer, log line or metric of the relay.
        return 202, {"data": {"sessionId": session.session_id, "durationSeconds": session.duration_seconds, "queued": True}}, []

    def _bulk(self, environ: Dict[str, Any]) -> Answer:
        self._authorize(environ, "playcamp")
        data = self._json(environ)
        envelope = bulk_envelope_problem(data)
        if envelope is not None:
            raise _Refusal(400, "invalid", envelope[1], field=envelope[0])
        models = _models()
        results: List[Any] = []
        keep: List[Tuple[str, str, Dict[str, Any]]] = []
        for index, item in enumerate(data["sessions"]):
            if isinstance(item, dict):  # what the envelope says holds for each session
                item = {**({"callbackId": data["callbackId"]} if "callbackId" in data else {}), **item}
                item = {**item, "isTest": True} if data.get("isTest") else item
            session, problem = self._check_session(item)
            if problem is not None:
                reason, field, rule = problem
                self._count("rejected", service="playcamp", reason=reason)
                session_id = item.get("sessionId") if isinstance(item, dict) else None
                name = session_id if isinstance(session_id, str) and session_id else f"sessions[{index}]"
                results.append(models.BulkItemResult(name, "FAILED", f"{field}: {rule}"))
                continue
            keep.append((session.session_id, "session", item))
            results.append(models.BulkItemResult(session.session_id, "SUCCESS"))
        self._limit_players(sorted({payload[2]["userId"] for payload in keep}))
        self._store("playcamp", keep)
        failed = sum(result.status == "FAILED" for result in results)
        summary = models.BulkPlaytimeResult(len(results), len(results) - failed, failed, 0, results)
        return 200, _wire.playcamp_envelope(summary), []

    def _event(self, environ: Dict[str, Any]) -> Answer:
        self._authorize(environ, "playfab")
        data = self._json(environ)
        if not isinstance(data, dict):
            raise _Refusal(400, "invalid", "The request body is not a JSON object")
        try:
            event = _wire.structure(data, _models().CharacterEvent)
        except PayloadError as error:
            raise _Refusal(400, "invalid", error.rule, field=error.field) from None
        problem = id_problem(self.config.limits, data) or event_problem(self.config.limits, event, utc_now(self._clock))
        if problem is not None:
            reason, field, rule = problem
            raise _Refusal(400, reason, rule, field=field)
        self._limit_players([event.playfab_id])
        body = data.get("Body")
        event_id = body.get(EVENT_ID_KEY) if isinstance(body, dict) else None
        event_id = event_id if isinstance(event_id, str) and event_id else uuid.uuid4().hex
        self._store("playfab", [(event_id, "event", data)])
        return 200, _wire.playfab_envelope(_models().CharacterEventResult(event_id=event_id)), []

    # -- the steps -------------------------------------------------------------------------------

    def _authorize(self, environ: Dict[str, Any], service: str) -> None:
        scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise _Refusal(401, "unauthorized", "send the game's ingest key: Authorization: Bearer KEY", challenge=CHALLENGE)
        digest = key_digest(key)  # the lookup's and the rate limit's name for the key: worked out once
        ingest = self.config.keys.get(digest)
        if ingest is None:
            raise _Refusal(401, "unauthorized", "unknown or revoked ingest key", challenge=CHALLENGE + ', error="invalid_token"')
        if service not in ingest.services or service not in self._recent:  # (a service added by a reload waits for a restart)
            raise _Refusal(403, "forbidden", f"this ingest key may not send to {service}")
        wait = self._limiters[0].check(digest)
        if wait is not None:
            raise _Refusal(429, "rate_limited_key", "too many requests for this ingest key", retry_after=wait)

    def _json(self, environ: Dict[str, Any]) -> Any:
        limit = self.config.limits.max_body_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > limit:
            raise _Refusal(413, "too_large", f"the body is over {limit} bytes")
        if not is_json(environ):
            raise _Refusal(415, "unsupported_media_type", "Content-Type must be application/json")
        raw = environ["wsgi.input"].read(length if length >= 0 else limit + 1)
        environ[_BODY] = raw  # PEP 3333 leaves environ to the application: the live page shows it
        if len(raw) > limit:
            raise _Refusal(413, "too_large", f"the body is over {limit} bytes")
        try:
            return parse_json(raw)
        except ValueError:
            raise _Refusal(400, "malformed_json", "the body is not JSON") from None

    def _check_session(self, data: Any) -> Tuple[Any, Optional[Problem]]:
        try:
            session = _wire.structure(data, _models().PlaytimeSession)
        except PayloadError as error:
            return None, ("invalid", error.field, error.rule)
        limits = self.config.limits
        return session, id_problem(limits, data) or session_problem(limits, session, utc_now(self._clock))

    def _limit_players(self, players: List[str]) -> None:
        limiter = self._limiters[1]
        for player in players:
            wait = limiter.check(key_digest(player))
            if wait is not None:
                raise _Refusal(429, "rate_limited_player", "too many requests for this player", retry_after=wait)

    def _store(self, service: str, payloads: List[Tuple[str, str, Dict[str, Any]]]) -> None:
        """Keep what is new of ``payloads`` durably, or refuse the whole request (503)."""
        recent = self._recent[service]
        new = [payload for payload in payloads if not recent.seen(payload[0])]
        if not new:
            return
        try:
            self.store.put(service, new)
        except Unavailable as error:
            if not self._store_failing:  # said when it starts failing, not for every request
                log.warning("playhooks relay: cannot store payloads, answering 503: %s", error)
            self._store_failing = True
            # The reason stays in the log: a path or a host of the studio's is not the client's business.
            raise _Refusal(503, "unavailable", "cannot store payloads now: try again later", retry_after=UNAVAILABLE_RETRY_AFTER) from None
        if self._store_failing:
            self._store_failing = False
            log.warning("playhooks relay: payloads are stored again")
        recent.add(payload[0] for payload in new)
        self._count("accepted", len(new), service=service)
        now = time.time()
        for _, kind, data in new:  # a game's retry of what was stored already is not counted twice
            if kind == "session":
                self._tally.session(data["durationSeconds"], now)
            else:
                self._tally.event(data["EventName"], now)


def _models() -> Any:
    from .. import _models

    return _models


def _refusal_answer(service: str, refusal: _Refusal) -> Answer:
    headers = []
    if refusal.challenge:
        headers.append(("WWW-Authenticate", refusal.challenge))
    if refusal.retry_after is not None:
        headers.append(("Retry-After", str(refusal.retry_after)))
    if service == "playfab":
        if refusal.status == 400:
            name, code = ("InvalidRequest", 1071) if refusal.reason == "malformed_json" else ("InvalidParams", 1000)
            details = None if refusal.field == "$" else {refusal.field: (refusal.message,)}
            return 400, playfab_error_body(400, name, code, refusal.message, details=details), headers
        name, code = _PLAYFAB_CODES[refusal.status]
        body = playfab_error_body(refusal.status, name, code, refusal.message, retry_after_seconds=refusal.retry_after)
        return refusal.status, body, headers
    if refusal.status == 400:
        return 400, playcamp_validation_body(refusal.field, refusal.message), headers
    return refusal.status, playcamp_body(_PLAYCAMP_CODES[refusal.status], refusal.message), headers


def _respond(start_response: Callable[..., Any], status: int, body: Any, headers: Optional[List[Tuple[str, str]]] = None) -> List[bytes]:
    data = _wire.encode(body)
    start_response(STATUS_LINES[status], [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(headers or [])])
    return [data]


def _is_local(environ: Mapping[str, Any]) -> bool:
    """A client on this machine, come straight rather than through a proxy that says whom for."""
    address = str(environ.get("REMOTE_ADDR", ""))
    loopback = address.startswith("127.") or address in ("::1", "localhost") or address.startswith("::ffff:127.")
    return loopback and not any(environ.get(name) for name in _PROXY_HEADERS)


def _presented_admin_key(authorization: str) -> Optional[str]:
    """The key of ``Bearer KEY``, or the password of ``Basic`` (what a browser sends once asked); None for neither."""
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return credentials
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""  # credentials, but no key in them: refused as a wrong one
        return decoded.partition(":")[2]
    return None


def _file_state(path: str) -> Optional[Tuple[int, int]]:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size
