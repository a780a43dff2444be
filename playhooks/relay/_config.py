"""The relay's configuration: one TOML file, checked whole when it is read.

    [playcamp]
    url = "https://sdk-api.playcamp.io"   # optional: the service's own by default
    api_key_env = "PLAYCAMP_API_KEY"       # the variable that holds the key; never the key itself
    [playfab]
    title_id = "ABCD"
    secret_key_env = "PLAYFAB_SECRET_KEY"
    [[ingest_keys]]
    key = "ik_coinrush_1"                  # what the game holds: write-only, revocable
    game = "coin-rush"
    services = ["playcamp", "playfab"]
    [live]                                 # optional: the live page at /_relay/live/
    admin_key_env = "PLAYHOOKS_RELAY_ADMIN_KEY"   # who may see it from elsewhere than this machine

The services' secrets come from the environment, so the file can be kept in version control and
shown to anyone; the ingest keys are in it, since they ship in games anyway and are revoked by
editing it (the relay reads it again on SIGHUP or when it changes). Every error names the file,
the table and the key to fix, never a secret's value.
"""

import hashlib
import os
import re
import sys
from typing import Any, Dict, FrozenSet, Mapping, Optional

import attrs

from .._errors import ConfigurationError
from .._retry import RetryPolicy
from .._services import PLAYCAMP_URL

SERVICES = ("playcamp", "playfab")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # 100 sessions with their metadata fit many times over
DEFAULT_KEY_RATE = 1000  # requests a second per ingest key: a game's whole audience
DEFAULT_PLAYER_RATE = 20  # requests a second per player: PlayFab takes one event a request
DEFAULT_MAX_SESSION_SECONDS = 24 * 3600
# A game spools offline and gives up on a record after 7 days (RetryPolicy.max_age): a day more.
DEFAULT_MAX_SESSION_AGE = 8 * 24 * 3600
DEFAULT_CLOCK_SKEW = 300  # players' clocks are wrong by minutes, not by hours
DEFAULT_MAX_SPOOL_RECORDS = 1_000_000
DEFAULT_MAX_SPOOL_BYTES = 1024 * 1024 * 1024
DEFAULT_RECLAIM_AFTER = 60.0


def key_digest(key: str) -> str:
    """How an ingest key is looked up and how a rate limit names it: never the key itself."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen
class Upstream:
    """A service the relay forwards to, and the secret it sends there (never shown)."""

    service: str
    url: str
    secret: str = attrs.field(repr=False)
    title_id: Optional[str] = None
    is_test: bool = False


@attrs.frozen
class IngestKey:
    """A game's write-only key: which game it is, and where it may send."""

    game: str
    services: FrozenSet[str]


@attrs.frozen
class Limits:
    """What the relay takes, each answered and counted when broken."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    requests_per_second_per_key: int = DEFAULT_KEY_RATE
    requests_per_second_per_player: int = DEFAULT_PLAYER_RATE
    max_session_seconds: int = DEFAULT_MAX_SESSION_SECONDS
    max_session_age_seconds: int = DEFAULT_MAX_SESSION_AGE
    max_clock_skew_seconds: int = DEFAULT_CLOCK_SKEW
    # Optional patterns ids must match whole (fullmatch), by the payload's field.
    patterns: Mapping[str, "re.Pattern[str]"] = attrs.field(factory=dict)


@attrs.frozen
class LiveSettings:
    """Who may see the live page: loopback clients (unless ``loopback`` is off), and whoever
    presents ``admin_key`` (from the environment, never shown)."""

    admin_key: Optional[str] = attrs.field(default=None, repr=False)
    loopback: bool = True


@attrs.frozen
class RedisSettings:
    url: str = attrs.field(repr=False)  # may hold a password
    prefix: str = "playhooks"
    reclaim_after: float = DEFAULT_RECLAIM_AFTER


@attrs.frozen
class RelayConfig:
    """The whole of a relay's configuration, as read from ``path``."""

    path: str
    upstreams: Mapping[str, Upstream]
    keys: Mapping[str, IngestKey]  # by key_digest
    limits: Limits
    spool_dir: Optional[str] = None
    max_spool_records: int = DEFAULT_MAX_SPOOL_RECORDS
    max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES
    redis: Optional[RedisSettings] = None
    live: LiveSettings = LiveSettings()
    max_in_flight: int = 8
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)

    def key(self, presented: str) -> Optional[IngestKey]:
        return self.keys.get(key_digest(presented))


# Which field of which payload each configurable pattern applies to.
PATTERN_FIELDS = {
    "user_id_pattern": "userId",
    "session_id_pattern": "sessionId",
    "playfab_id_pattern": "PlayFabId",
    "character_id_pattern": "CharacterId",
}


def load_config(path: str, environ: Optional[Mapping[str, str]] = None) -> RelayConfig:
    """Read and check the relay's TOML file, with the services' secrets from ``environ``.

    Raises:
        ConfigurationError: naming the file, table and key: unreadable, not TOML, a missing or
            malformed value, a secret's variable unset, an ingest key for a service not configured.
    """
    environ = os.environ if environ is None else environ
    try:
        with open(path, "rb") as file:
            document = _toml().loads(file.read().decode("utf-8"))
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot be read ({error.strerror})") from None
    except ValueError as error:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigurationError(f"{path}: is not valid TOML ({error})") from None
    reader = _Reader(path, document)
    upstreams = {}
    if "playcamp" in document:
        table = reader.table("playcamp", {"url", "api_key_env", "is_test"})
        secret = _secret(reader, table, "playcamp", "api_key_env", environ)
        upstreams["playcamp"] = Upstream(
            "playcamp",
            reader.text(table, "playcamp", "url", PLAYCAMP_URL),
            secret,
            is_test=reader.flag(table, "playcamp", "is_test", False),
        )
    if "playfab" in document:
        table = reader.table("playfab", {"url", "title_id", "secret_key_env"})
        title_id = reader.text(table, "playfab", "title_id")
        secret = _secret(reader, table, "playfab", "secret_key_env", environ)
        url = reader.text(table, "playfab", "url", f"https://{title_id.lower()}.playfabapi.com")
        upstreams["playfab"] = Upstream("playfab", url, secret, title_id=title_id)
    if not upstreams:
        raise ConfigurationError(f"{path}: configure [playcamp], [playfab] or both: the relay has nowhere to send")
    limits = _limits(reader)
    spool = reader.table("spool", {"dir", "max_records", "max_bytes"}) if "spool" in document else {}
    upstream_keys = {"max_in_flight", "connect_timeout", "read_timeout", "retry_base_delay", "retry_max_delay", "max_attempts", "max_age"}
    upstream = reader.table("upstream", upstream_keys) if "upstream" in document else {}
    defaults = RetryPolicy()
    redis = None
    if "redis" in document:
        table = reader.table("redis", {"url", "prefix", "reclaim_after"})
        redis = RedisSettings(
            reader.text(table, "redis", "url"),
            reader.text(table, "redis", "prefix", "playhooks"),
            reader.number(table, "redis", "reclaim_after", DEFAULT_RECLAIM_AFTER),
        )
    live = LiveSettings()
    if "live" in document:
        table = reader.table("live", {"admin_key_env", "loopback"})
        live = LiveSettings(
            _secret(reader, table, "live", "admin_key_env", environ) if "admin_key_env" in table else None,
            reader.flag(table, "live", "loopback", True),
        )
    reader.no_other_tables({"playcamp", "playfab", "ingest_keys", "limits", "spool", "upstream", "redis", "live"})
    return RelayConfig(
        path=os.path.abspath(path),
        upstreams=upstreams,
        keys=_ingest_keys(reader, upstreams),
        limits=limits,
        spool_dir=reader.text(spool, "spool", "dir", None) if spool else None,
        max_spool_records=reader.whole(spool, "spool", "max_records", DEFAULT_MAX_SPOOL_RECORDS),
        max_spool_bytes=reader.whole(spool, "spool", "max_bytes", DEFAULT_MAX_SPOOL_BYTES),
        redis=redis,
        live=live,
        max_in_flight=reader.whole(upstream, "upstream", "max_in_flight", 8),
        connect_timeout=reader.number(upstream, "upstream", "connect_timeout", 5.0),
        read_timeout=reader.number(upstream, "upstream", "read_timeout", 10.0),
        retry=RetryPolicy(
            base_delay=reader.number(upstream, "upstream", "retry_base_delay", defaults.base_delay),
            max_delay=min(reader.number(upstream, "upstream", "retry_max_delay", defaults.max_delay), 3600.0),
            max_attempts=reader.whole(upstream, "upstream", "max_attempts", defaults.max_attempts),
            max_age=reader.number(upstream, "upstream", "max_age", defaults.max_age),
        ),
    )


def _toml() -> Any:
    """The standard library's TOML reader from Python 3.11, ``tomli`` (the same code) before it."""
    import importlib

    # By name: the 3.9 check reads this package's source, and it may run where tomllib is absent.
    name = "tomllib" if sys.version_info >= (3, 11) else "tomli"
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigurationError("the relay reads TOML with tomli below Python 3.11: pip install 'playhooks[relay]'") from None


def _secret(reader: "_Reader", table: Mapping[str, Any], name: str, key: str, environ: Mapping[str, str]) -> str:
    variable = reader.text(table, name, key)
    value = environ.get(variable, "")
    if not value:
        raise ConfigurationError(f"{reader.path}: [{name}] {key}: the variable {variable} is not set (it holds the secret)")
    if not (value.isascii() and value.isprintable() and " " not in value):
        raise ConfigurationError(f"{reader.path}: [{name}] {key}: the variable {variable} must hold the key alone, no spaces")
    return value


def _limits(reader: "_Reader") -> Limits:
    if "limits" not in reader.document:
        return Limits()
    known = {
        "max_body_bytes",
        "requests_per_second_per_key",
        "requests_per_second_per_player",
        "max_session_seconds",
        "max_session_age_seconds",
        "max_clock_skew_seconds",
        *PATTERN_FIELDS,
    }
    table = reader.table("limits", known)
    patterns = {}
    for key, field in PATTERN_FIELDS.items():
        text = reader.text(table, "limits", key, None)
        if text is not None:
            try:
                patterns[field] = re.compile(text)
            except re.error as error:
                raise ConfigurationError(f"{reader.path}: [limits] {key}: not a regular expression ({error})") from None
    whole = reader.whole
    return Limits(
        max_body_bytes=whole(table, "limits", "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
        requests_per_second_per_key=whole(table, "limits", "requests_per_second_per_key", DEFAULT_KEY_RATE),
        requests_per_second_per_player=whole(table, "limits", "requests_per_second_per_player", DEFAULT_PLAYER_RATE),
        max_session_seconds=whole(table, "limits", "max_session_seconds", DEFAULT_MAX_SESSION_SECONDS),
        max_session_age_seconds=whole(table, "limits", "max_session_age_seconds", DEFAULT_MAX_SESSION_AGE),
        max_clock_skew_seconds=whole(table, "limits", "max_clock_skew_seconds", DEFAULT_CLOCK_SKEW),
        patterns=patterns,
    )


def _ingest_keys(reader: "_Reader", upstreams: Mapping[str, Upstream]) -> Dict[str, IngestKey]:
    entries = reader.document.get("ingest_keys", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ConfigurationError(f"{reader.path}: ingest_keys: must be [[ingest_keys]] tables")
    keys: Dict[str, IngestKey] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"[[ingest_keys]] #{number}"
        reader.check_keys(entry, where, {"key", "game", "services"})
        key = reader.text(entry, where, "key")
        if not (key.isascii() and key.isprintable() and " " not in key and len(key) >= 8):
            raise ConfigurationError(f"{reader.path}: {where} key: must be 8 or more printable ASCII characters, no spaces")
        services = entry.get("services", list(upstreams))
        if not isinstance(services, list) or not services or not set(services) <= set(SERVICES):
            raise ConfigurationError(f"{reader.path}: {where} services: must list one or both of {', '.join(SERVICES)}")
        missing = sorted(set(services) - set(upstreams))
        if missing:
            raise ConfigurationError(f"{reader.path}: {where} services: {', '.join(missing)} is not configured: add its table")
        digest = key_digest(key)
        if digest in keys:
            raise ConfigurationError(f"{reader.path}: {where} key: the same key is listed twice")
        keys[digest] = IngestKey(reader.text(entry, where, "game"), frozenset(services))
    return keys


class _Reader:
    """Typed reads from the parsed document, each error naming the file, the table and the key."""

    def __init__(self, path: str, document: Dict[str, Any]) -> None:
        self.path = path
        self.document = document

    def table(self, name: str, known: set) -> Dict[str, Any]:
        table = self.document[name]
        if not isinstance(table, dict):
            raise ConfigurationError(f"{self.path}: {name}: must be a [{name}] table")
        self.check_keys(table, f"[{name}]", known)
        return table

    def check_keys(self, table: Mapping[str, Any], where: str, known: set) -> None:
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigurationError(f"{self.path}: {where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")

    def no_other_tables(self, known: set) -> None:
        self.check_keys(self.document, "the top level", known)

    def text(self, table: Mapping[str, Any], where: str, key: str, default: Any = ...) -> Any:
        value = table.get(key, default)
        if value is ...:
            raise ConfigurationError(f"{self.path}: {_where(where)} {key}: is required")
        if value is not default and (not isinstance(value, str) or not value):
            raise ConfigurationError(f"{self.path}: {_where(where)} {key}: must be a non-empty string")
        return value

    def flag(self, table: Mapping[str, Any], where: str, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if type(value) is not bool:
            raise ConfigurationError(f"{self.path}: {_where(where)} {key}: must be true or false")
        return value

    def whole(self, table: Mapping[str, Any], where: str, key: str, default: int) -> int:
        value = table.get(key, default)
        if type(value) is not int or value < 1:
            raise ConfigurationError(f"{self.path}: {_where(where)} {key}: must be a whole number, 1 or more")
        return value

    def number(self, table: Mapping[str, Any], where: str, key: str, default: float) -> float:
        value = table.get(key, default)
        if type(value) not in (int, float) or not 0 < value < 10**9:
            raise ConfigurationError(f"{self.path}: {_where(where)} {key}: must be a number of seconds above 0")
        return float(value)


def _where(where: str) -> str:
    return where if where.startswith("[") else f"[{where}]"
