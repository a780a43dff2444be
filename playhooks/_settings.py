"""A tracker's settings: one immutable value, checked when the tracker is made."""

import os
import stat
import sys
from typing import Any, Iterator, Optional

import attrs

from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ConfigurationError
from ._retry import RetryPolicy

DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_FLUSH_INTERVAL = 0.1
DEFAULT_MAX_QUEUE = 10_000
DEFAULT_MAX_SPOOL_RECORDS = 100_000
DEFAULT_MAX_SPOOL_BYTES = 64 * 1024 * 1024
DEFAULT_CHECKPOINT_INTERVAL = 5.0
# Requests in flight per service. PlayFab takes events one request each: at 20 ms a request, 8
# keep up with a busy game's 300 events/s, where one connection does 45/s. More buys little
# (the sender's CPU becomes the limit) and PlayFab refuses a title's excess concurrent requests.
DEFAULT_MAX_IN_FLIGHT = 8
DURABILITY_MODES = ("interval", "sync")


def _flag(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not bool:
        raise ConfigurationError(f"{attribute.name}: must be True or False (got {value!r})")


def _positive_number(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) not in (int, float) or not value > 0:
        raise ConfigurationError(f"{attribute.name}: must be a number > 0 (got {value!r})")


def _positive_int(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not int or value < 1:
        raise ConfigurationError(f"{attribute.name}: must be an integer >= 1 (got {value!r})")


def _durability(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value not in DURABILITY_MODES:
        raise ConfigurationError(f"{attribute.name}: must be one of {', '.join(DURABILITY_MODES)} (got {value!r})")


def _optional_folder(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(f"{attribute.name}: must be a folder path (got {value!r})")


def _retry_policy(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, RetryPolicy):
        raise ConfigurationError(f"{attribute.name}: must be a playhooks.RetryPolicy (got {value!r})")


def _clock(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not (callable(getattr(value, "monotonic", None)) and callable(getattr(value, "wall", None))):
        raise ConfigurationError(f"{attribute.name}: must have monotonic() and wall() methods (got {value!r})")


@attrs.frozen
class Settings:
    """How a Tracker behaves.

    Attributes:
        strict: check every hook argument on the caller and raise ``PayloadError`` (for
            development and tests). Off, hooks never raise: bad input is logged and counted.
        idle_timeout: seconds a session may stay paused before it ends at the pause; a resume
            after that starts a new session. 300 s, as the background timeouts of Unity Analytics
            and GameAnalytics.
        flush_interval: seconds between the worker's rounds: how long a payload may wait in memory.
        max_queue: events held in memory waiting for the worker; past it new events are dropped
            (counted as ``queue_full``). Sessions are never dropped for room.
        clock: where time is read; ``playhooks.testing.ManualClock`` in tests.
        durability: ``"interval"`` (the default) writes accepted payloads to the spool within
            ``flush_interval``, off the game's thread; ``"sync"`` writes them before the hook
            returns, on the caller's thread: nothing accepted is lost even to a crash a moment
            later, at the cost of an fsync (about a millisecond on an SSD) in every hook call.
        spool_dir: where payloads for PlayCamp and PlayFab wait (only made when such a sink is
            given); default: ``playhooks/<program name>-<hash of its path>`` in the user's data
            folder.
        checkpoint_interval: seconds between checkpoints of open sessions, the most a crash loses.
        retry: back-off and give-up rules for delivery (``playhooks.RetryPolicy``).
        max_in_flight: requests to each service at once (each service has its own lane, so one
            that hangs or throttles never holds up the other).
        connect_timeout, read_timeout: seconds, for each request to a service.
        max_spool_records, max_spool_bytes: the spool's bounds; past them the oldest records are
            dropped, events before sessions (counted as ``spool_full``).
    """

    strict: bool = attrs.field(default=False, validator=_flag)
    idle_timeout: float = attrs.field(default=DEFAULT_IDLE_TIMEOUT, validator=_positive_number)
    flush_interval: float = attrs.field(default=DEFAULT_FLUSH_INTERVAL, validator=_positive_number)
    max_queue: int = attrs.field(default=DEFAULT_MAX_QUEUE, validator=_positive_int)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=_clock, repr=False)
    durability: str = attrs.field(default="interval", validator=_durability)
    spool_dir: Optional[str] = attrs.field(default=None, validator=_optional_folder)
    checkpoint_interval: float = attrs.field(default=DEFAULT_CHECKPOINT_INTERVAL, validator=_positive_number)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, validator=_retry_policy)
    max_in_flight: int = attrs.field(default=DEFAULT_MAX_IN_FLIGHT, validator=_positive_int)
    connect_timeout: float = attrs.field(default=5.0, validator=_positive_number)
    read_timeout: float = attrs.field(default=10.0, validator=_positive_number)
    max_spool_records: int = attrs.field(default=DEFAULT_MAX_SPOOL_RECORDS, validator=_positive_int)
    max_spool_bytes: int = attrs.field(default=DEFAULT_MAX_SPOOL_BYTES, validator=_positive_int)

    def spool_folder(self) -> str:
        """The spool folder: the one given, or one per program in the user's data folder."""
        if self.spool_dir is not None:
            return os.fspath(self.spool_dir)
        script = sys.argv[0] if sys.argv and sys.argv[0] else ""
        return os.path.join(_user_data_folder(), "playhooks", program_folder_name(script))


def program_folder_name(script: str) -> str:
    """``<program>-<hash of its path>``: the name of a program's spool folder. The path's hash
    too: every game's entry point may be called main.py, and two games must never share a spool
    (the second would send the first's sessions with its own keys)."""
    # hashlib loads here, not with playhooks: OpenSSL's start is a few milliseconds of the game's.
    import hashlib

    program = os.path.splitext(os.path.basename(script))[0] or "python"
    digest = hashlib.sha256(os.path.abspath(script).encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{program}-{digest}"


def spool_folders(settings: Settings) -> Iterator[str]:
    """Where the spool may live, best first: the folder the settings name, then one of the same
    name in a private folder under the system's temporary folder (for a read-only home). The
    second is looked for, and made, only if asked for."""
    folder = settings.spool_folder()
    yield folder
    fallback = private_temporary_folder()
    if fallback is not None:
        yield os.path.join(fallback, os.path.basename(folder.rstrip("/\\")) or "spool")


def private_temporary_folder(make: bool = True) -> Optional[str]:
    """``playhooks-<user>`` in the temporary folder, made ours alone (or, without ``make``, only if
    it is there already); None where that cannot be had safely (another user made it first, or it
    is a link planted to redirect our writes)."""
    import tempfile

    try:
        user = os.getuid() if hasattr(os, "getuid") else 0
        folder = os.path.join(tempfile.gettempdir(), f"playhooks-{user}")
        if make:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        status = os.lstat(folder)
    except OSError:
        return None
    if hasattr(os, "getuid") and (status.st_uid != os.getuid() or stat.S_ISLNK(status.st_mode) or status.st_mode & 0o077):
        return None
    return folder


def _user_data_folder() -> str:
    if os.name == "nt":
        return os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    return os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
