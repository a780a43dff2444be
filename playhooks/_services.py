"""The delivery sinks: PlayCamp's playtime sessions and PlayFab's character events.

Their payloads go through the spool and the sender thread rather than ``send``: they are on disk
before any request is made, and retried until each service has them or refuses them. A sink holds
its service's key and nothing else does: not the spool, not a log line, not a ``repr``.
"""

import urllib.parse
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import attrs

from ._errors import ConfigurationError, PayloadError
from ._retry import DELIVERED, NOT_SENT, REJECTED, RETRY, Outcome
from ._sinks import EVENT, SESSION, Payload, Sink

PLAYCAMP_URL = "https://sdk-api.playcamp.io"
PLAYCAMP_SESSIONS = "/v1/server/playtime/sessions"
PLAYCAMP_BULK = "/v1/server/playtime/sessions/bulk"
PLAYFAB_EVENT = "/Server/WriteCharacterEvent"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class DeliverySink(Sink):
    """A sink whose payloads are spooled, then delivered over HTTP by the sender thread.

    Attributes:
        name: the spool folder its records wait in.
        max_batch: records the sender claims at a time (more when one spool file holds more).
        per_request: records one request carries.
    """

    name = "delivery"
    max_batch = 1
    per_request = 1
    _secrets: Tuple[str, ...] = ()  # the keys it sends, as a server may quote them: never stored or logged

    def send(self, payloads: Sequence[Payload]) -> None:  # pragma: no cover - the worker spools instead
        raise TypeError(f"{type(self).__name__} payloads go through the spool")

    def prepare(self, data: Dict[str, Any]) -> Dict[str, Any]:
        """The JSON to spool for a payload: the sink's own defaults filled in."""
        return data

    def deliver(self, batch: List[Dict[str, Any]], transport: Any, stopping: Callable[[], bool] = lambda: False) -> Iterator[Outcome]:
        """Send a batch: one outcome per item, in order, each yielded as
        soon as it is known, so the sender notes it at once. Once ``stopping()`` is true, no new
        request is made: the items left are ``NOT_SENT``."""
        raise NotImplementedError

    def scrub(self, outcome: Outcome) -> Outcome:
        """The outcome with this sink's secrets cut out of its reason: a server or a proxy may echo
        request headers in an error body, and reasons go to the log, ``stats()`` and ``dead/``."""
        reason = outcome.reason
        for secret in self._secrets:
            reason = reason.replace(secret, "[redacted]")
        return outcome if reason == outcome.reason else attrs.evolve(outcome, reason=reason)


class PlayCamp(DeliverySink):
    """Playtime sessions to PlayCamp's ``Record Playtime Session`` API, or to a relay.

    Args:
        api_key: a Server API key, ``"keyId:secret"``. A server secret: never ship it in a game
            build given to players; give those ``ingest_key`` and a relay's ``base_url`` instead.
        base_url: the API's root; the emulator's in development, the studio's relay with an
            ``ingest_key``.
        ingest_key: instead of ``api_key``, a relay's write-only key for this game (see
            ``playhooks relay``); sent as ``Authorization: Bearer``, like the server key.
        campaign_id, creator_key, platform: defaults for sessions that do not set their own.
        is_test: mark every session as a test (PlayCamp records nothing for it).

    Raises:
        ConfigurationError: not exactly one of the two keys, a key that is malformed, an ingest
            key without a relay's URL, or a default that breaks PlayCamp's rules.
    """

    kinds = frozenset({SESSION})
    max_batch = 100
    per_request = 100  # a backlog goes out through the bulk endpoint, 100 sessions a request

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: str = PLAYCAMP_URL,
        *,
        ingest_key: Optional[str] = None,
        campaign_id: Optional[str] = None,
        creator_key: Optional[str] = None,
        platform: Optional[str] = None,
        is_test: bool = False,
        name: str = "playcamp",
    ) -> None:
        self.base_url = _checked_url("base_url", base_url)
        self.name = name
        self.key_id: Optional[str] = None
        self.relay = ingest_key is not None
        if self.relay:
            _check_ingest_key(api_key, ingest_key, self.base_url, PLAYCAMP_URL)
            key = ingest_key
            self._secrets = _quoted_forms(key)
        else:
            key_id, _, secret = api_key.partition(":") if _header_safe(api_key) else ("", "", "")  # type: ignore[union-attr]
            if not key_id or not secret:
                raise ConfigurationError(
                    "api_key: must be a PlayCamp server key, 'keyId:secret', both parts non-empty, no spaces"
                    " (or, in a game given to players, an ingest_key and a relay's base_url)"
                )
            self.key_id = key_id
            key = api_key
            self._secrets = _quoted_forms(key, secret)
        self._headers = {"Authorization": f"Bearer {key}"}
        self._defaults = _session_defaults(campaign_id, creator_key, platform)
        if type(is_test) is not bool:
            raise ConfigurationError(f"is_test: must be True or False (got {is_test!r})")
        self._forced = {"isTest": True} if is_test else {}

    def prepare(self, data: Dict[str, Any]) -> Dict[str, Any]:
        return {**self._defaults, **data, **self._forced}

    def deliver(self, batch: List[Dict[str, Any]], transport: Any, stopping: Callable[[], bool] = lambda: False) -> Iterator[Outcome]:
        for start in range(0, len(batch), self.per_request):
            yield from self._deliver_some(batch[start : start + self.per_request], transport, stopping)

    def _deliver_some(self, batch: List[Dict[str, Any]], transport: Any, stopping: Callable[[], bool]) -> Iterator[Outcome]:
        from . import _wire

        if stopping():
            yield from [NOT_SENT] * len(batch)
            return
        if len(batch) == 1:
            outcome, _ = transport.post(self.base_url + PLAYCAMP_SESSIONS, self._headers, _wire.encode(batch[0]))
            yield self.scrub(outcome)
            return
        outcome, answer = transport.post(self.base_url + PLAYCAMP_BULK, self._headers, _wire.encode({"sessions": batch}))
        outcome = self.scrub(outcome)
        if outcome.kind == REJECTED and outcome.status not in (401, 403):
            # Refused as a whole (too large, say): each session may still be fine on its own.
            for session in batch:
                yield from self._deliver_some([session], transport, stopping)
            return
        if outcome.kind != DELIVERED:
            yield from [outcome] * len(batch)
            return
        results = {}
        data = answer.get("data") if isinstance(answer, dict) else None
        for item in data.get("results", []) if isinstance(data, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("sessionId"), str):
                results[item["sessionId"]] = item
        for session in batch:
            yield self.scrub(_bulk_outcome(results.get(session["sessionId"])))

    def __repr__(self) -> str:
        if self.relay:
            return f"PlayCamp(base_url={self.base_url!r}, relay=True)"
        return f"PlayCamp(base_url={self.base_url!r}, key_id={self.key_id!r})"


class PlayFab(DeliverySink):
    """Character events to PlayFab's server ``WriteCharacterEvent`` API, or to a relay.

    Args:
        title_id: the PlayFab title id (with ``ingest_key``, the relay knows it: leave it out).
        secret_key: the title's secret key. A server secret: never ship it in a game build given
            to players; give those ``ingest_key`` and a relay's ``base_url`` instead.
        base_url: the API's root; defaults to ``https://{title_id}.playfabapi.com``; the
            studio's relay with an ``ingest_key``.
        ingest_key: instead of ``secret_key``, a relay's write-only key for this game (see
            ``playhooks relay``), sent as ``Authorization: Bearer``.

    Raises:
        ConfigurationError: an empty title id or key, not exactly one of the two keys, an ingest
            key without a relay's URL, or a base URL that is not HTTPS.
    """

    kinds = frozenset({EVENT})
    max_batch = 50  # claimed together, sent one request each (PlayFab has no batch call)

    def __init__(
        self,
        title_id: Optional[str] = None,
        secret_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        ingest_key: Optional[str] = None,
        name: str = "playfab",
    ) -> None:
        self.relay = ingest_key is not None
        if not (isinstance(title_id, str) and title_id.isalnum()) and not (self.relay and title_id is None):
            raise ConfigurationError("title_id: must be the title's id, letters and digits")
        self.title_id = title_id
        self.name = name
        if self.relay:
            _check_ingest_key(secret_key, ingest_key, base_url, None)
            self.base_url = _checked_url("base_url", base_url)
            self._headers = {"Authorization": f"Bearer {ingest_key}"}
            self._secrets = _quoted_forms(ingest_key)  # type: ignore[arg-type]
            return
        if not _header_safe(secret_key):
            raise ConfigurationError(
                "secret_key: must be the title's secret key, a non-empty string, no spaces"
                " (or, in a game given to players, an ingest_key and a relay's base_url)"
            )
        self.base_url = _checked_url("base_url", base_url or f"https://{title_id.lower()}.playfabapi.com")  # type: ignore[union-attr]
        self._headers = {"X-SecretKey": secret_key}  # type: ignore[dict-item]
        self._secrets = _quoted_forms(secret_key)  # type: ignore[arg-type]

    def deliver(self, batch: List[Dict[str, Any]], transport: Any, stopping: Callable[[], bool] = lambda: False) -> Iterator[Outcome]:
        from . import _wire

        for sent, event in enumerate(batch, start=1):
            if stopping():
                yield from [NOT_SENT] * (len(batch) - sent + 1)
                return
            outcome, _ = transport.post(self.base_url + PLAYFAB_EVENT, self._headers, _wire.encode(event))
            outcome = self.scrub(outcome)
            yield outcome
            if outcome.kind == RETRY:
                # The service is failing or throttling: the rest of the batch waits with this one.
                yield from [attrs.evolve(outcome, attempted=False)] * (len(batch) - sent)
                return

    def __repr__(self) -> str:
        if self.relay:
            return f"PlayFab(base_url={self.base_url!r}, relay=True)"
        return f"PlayFab(title_id={self.title_id!r}, base_url={self.base_url!r})"


def relay_sinks(relay_url: str, ingest_key: str) -> List[DeliverySink]:
    """Both services' sinks, sending to the studio's relay with the game's ingest key."""
    return [PlayCamp(base_url=relay_url, ingest_key=ingest_key), PlayFab(base_url=relay_url, ingest_key=ingest_key)]


def _check_ingest_key(server_key: Optional[str], ingest_key: Any, base_url: Optional[str], default_url: Optional[str]) -> None:
    """An ingest key goes alone, to a relay: a server key beside it would be a secret shipped for nothing."""
    if server_key is not None:
        raise ConfigurationError("ingest_key: give it instead of the server key, not with it (the relay holds that)")
    if not _header_safe(ingest_key):
        raise ConfigurationError("ingest_key: must be the game's ingest key from the relay's config, a non-empty string, no spaces")
    if base_url is None or base_url == default_url:
        raise ConfigurationError("base_url: an ingest_key is for the studio's relay: give the relay's URL")


def _quoted_forms(*secrets: str) -> Tuple[str, ...]:
    """Each secret as it is, and URL-quoted, as an echo may carry it; longest first, so a whole
    key is cut out before a part of it."""
    forms = {
        form for secret in secrets for form in (secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret))
    }
    return tuple(sorted(forms, key=len, reverse=True))


def _header_safe(key: Any) -> bool:
    """A key that can travel in an HTTP header: printable ASCII, no spaces (a pasted newline is
    the usual culprit, and http.client would quote the whole header in its error)."""
    return isinstance(key, str) and bool(key) and key.isascii() and key.isprintable() and " " not in key


def _bulk_outcome(item: Optional[Dict[str, Any]]) -> Outcome:
    if item is None:
        return Outcome(RETRY, "missing from the bulk answer")
    status = item.get("status")
    if status in ("SUCCESS", "SKIPPED"):  # SKIPPED: PlayCamp already had this sessionId
        return Outcome(DELIVERED)
    if status == "FAILED":
        return Outcome(REJECTED, f"bulk item failed: {item.get('error')}")
    return Outcome(RETRY, f"unknown bulk status {status!r}")


def _checked_url(field: str, url: Any) -> str:
    """HTTPS, or plain HTTP to this machine only (the emulator), as PlayCamp's own SDK allows.

    A base URL, to which the endpoint's path is added: one that already ends with an endpoint's
    path (pasted from the API's documentation) would send everything to a 404, and dead-letter it.
    """
    try:
        parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        host = parsed.hostname if parsed is not None else None
    except ValueError:  # an unclosed IPv6 bracket, say
        parsed = host = None
    if parsed is None or not host:
        raise ConfigurationError(f"{field}: must be a URL such as https://host (got {url!r})")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and host in LOOPBACK_HOSTS):
        raise ConfigurationError(f"{field}: must use https (plain http only to localhost) (got {url!r})")
    if parsed.query or parsed.fragment:
        raise ConfigurationError(f"{field}: must be a base URL, without ?query or #fragment (got {url!r})")
    path = parsed.path.rstrip("/")
    for endpoint in (PLAYCAMP_BULK, PLAYCAMP_SESSIONS, PLAYFAB_EVENT):
        if path.lower().endswith(endpoint.lower()):
            raise ConfigurationError(
                f"{field}: must be the base URL, without the endpoint's path {endpoint} (got {url!r})"
            )
    return url.rstrip("/")


def _session_defaults(campaign_id: Any, creator_key: Any, platform: Any) -> Dict[str, Any]:
    from ._session import SessionOptions

    try:
        SessionOptions(user_id="-", campaign_id=campaign_id, creator_key=creator_key, platform=platform)
    except PayloadError as error:
        raise ConfigurationError(str(error)) from None
    defaults = {"campaignId": campaign_id, "creatorKey": creator_key, "platform": platform}
    return {key: value for key, value in defaults.items() if value is not None}
