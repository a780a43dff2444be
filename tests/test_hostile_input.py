"""Hostile input: a bad value costs only its own payload, and never raises into the game (issue 8).

A value that fails in a way nobody planned for (a lone surrogate, a ``__repr__`` that raises, a
Mapping whose methods raise, a time zone that raises, an int too long to print, a timestamp at the
ends of ``datetime``, a session whose end overflows) must cost its own payload and nothing else:
counted once under its reason (or, in strict mode, refused with ``PayloadError``), never the good
payloads handled in the same worker round, never an exception in the game's thread.

The hostile values come first, each a small class or constant saying in one line why it is
hostile; ``KINDS`` then makes hook calls with them. Each kind says what it may cost:

- ``BAD``: invalid data. Lenient and sync modes drop it and count it once under ``reason``; strict
  mode raises ``PayloadError`` at the call (``strict=RAISES``), except where the argument is fine
  and the clock made it bad (``strict=MAY_ACCEPT``: refused, or accepted then counted).
- ``EITHER``: valid JSON behind a hostile interface (a dict whose ``copy`` raises). It may arrive
  (found by its body's ``n``) or be dropped and counted, in any mode, but never lost unseen.
- ``NOTHING``: a pause, resume or end aimed at a garbage ``session=``: there is no payload, so
  nothing is counted (as ``test_ambiguous_session_is_logged_not_raised`` has it); strict raises
  ``PayloadError``.

Every test runs in three modes: lenient (the default), ``strict=True`` and ``durability="sync"``.
"""

import collections
import functools
import itertools
import os
import random
import threading
import traceback
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, Dict, List, Optional, Set

import pytest

import playhooks
from playhooks import PayloadError
from playhooks.emulator import Emulator
from playhooks.testing import ManualClock

CHARACTER = {"character_id": "8D2E0F4B1A6C9E37", "playfab_id": "4F1C2A9B7D3E8A61"}
IDLE_TIMEOUT = 60.0
MODES = {"lenient": {}, "strict": {"strict": True}, "sync": {"durability": "sync"}}
TRACKER_THREADS = ("playhooks-worker", "playhooks-sender")  # name prefixes


# -- hostile values ------------------------------------------------------------------------------


class Boom(Exception):
    """What a hostile value raises: an exception no library code can be expecting by name."""


LONE_SURROGATE = "\ud800"  # half a UTF-16 pair: a valid str that UTF-8 cannot encode
INT_TOO_LONG = 10**10_000  # str() and repr() raise ValueError past 4300 digits (3.11+, 3.9.14+)
INT_TOO_LONG_FOR_A_BODY = 10**20_000  # unprintable, or (on an older 3.9) printable but over 10 KiB
END_OF_TIME = datetime.max.replace(tzinfo=timezone.utc)
START_OF_TIME = datetime.min.replace(tzinfo=timezone.utc)


class ReprRaises:
    """Its repr raises: an error message that quotes it must not."""

    def __repr__(self) -> str:
        raise Boom("__repr__")


class ReprRaisesStr(str):
    """A str subclass whose repr raises (the type check refuses it, then quotes it)."""

    def __repr__(self) -> str:
        raise Boom("str.__repr__")


class HostileStr(str):
    """A str subclass whose __hash__, __eq__, __ne__ and __str__ raise; its repr works."""

    def __hash__(self) -> int:
        raise Boom("str.__hash__")

    def __eq__(self, other: object) -> bool:
        raise Boom("str.__eq__")

    def __ne__(self, other: object) -> bool:
        raise Boom("str.__ne__")

    def __str__(self) -> str:
        raise Boom("str.__str__")


class HashRaisesStr(str):
    """A str subclass that cannot be hashed, so it cannot become a key of a dict."""

    def __hash__(self) -> int:
        raise Boom("str.__hash__")


class EqRaises:
    """Comparing it raises: ``value in ("iOS", "Android", ...)`` compares it."""

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        raise Boom("__eq__")


class ClassRaises:
    """Its ``__class__`` raises, so every isinstance() check on it raises (type() does not)."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # type: ignore[override]
        raise Boom("__class__")


class _HashRaisesMeta(type):
    def __hash__(cls) -> int:
        raise Boom("type.__hash__")


class ClassHashRaises(metaclass=_HashRaisesMeta):
    """isinstance() against an ABC (Mapping) hashes the class for its cache: here that raises."""


class BrokenMapping(Mapping):
    """A Mapping over ``data`` whose methods named in ``broken`` raise (all of them by default)."""

    METHODS = ("__getitem__", "__iter__", "__len__", "__contains__", "keys", "items", "values", "get")

    def __init__(self, data: Any = (), broken: Any = METHODS) -> None:
        self._data = dict(data)
        self._broken = frozenset(broken)

    def _check(self, method: str) -> None:
        if method in self._broken:
            raise Boom(f"Mapping.{method}")

    def __getitem__(self, key: Any) -> Any:
        self._check("__getitem__")
        return self._data[key]

    def __iter__(self) -> Any:
        self._check("__iter__")
        return iter(self._data)

    def __len__(self) -> int:
        self._check("__len__")
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        self._check("__contains__")
        return key in self._data

    def keys(self) -> Any:
        self._check("keys")
        return super().keys()

    def items(self) -> Any:
        self._check("items")
        return super().items()

    def values(self) -> Any:
        self._check("values")
        return super().values()

    def get(self, key: Any, default: Any = None) -> Any:
        self._check("get")
        return super().get(key, default)


class PairsMapping(Mapping):
    """A Mapping kept as a list of pairs, so it can hold a key that cannot be hashed."""

    def __init__(self, pairs: Any) -> None:
        self._pairs = list(pairs)

    def __getitem__(self, key: Any) -> Any:
        for candidate, value in self._pairs:
            if candidate == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Any:
        return (key for key, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


class CopyRaisesDict(dict):
    """A dict whose copy() raises; dict(it) still reads it."""

    def copy(self) -> Any:
        raise Boom("dict.copy")


class ItemsRaiseDict(dict):
    """A dict whose items(), keys() and values() raise; dict(it) still reads it."""

    def items(self) -> Any:
        raise Boom("dict.items")

    def keys(self) -> Any:
        raise Boom("dict.keys")

    def values(self) -> Any:
        raise Boom("dict.values")


class GrowsWhileIterated(dict):
    """A dict that gains a key while its items are read, as when another thread writes to it."""

    def items(self) -> Any:
        for key, value in dict.items(self):  # the real iterator: it raises "changed size"
            self[key + "_again"] = value
            yield key, value


class ChangesWhileIterated(list):
    """A list another thread changes while it is read: its iterator gives up half-way."""

    def __iter__(self) -> Any:
        yield next(list.__iter__(self))
        raise RuntimeError("list changed size during iteration")


class RaisingTz(tzinfo):
    """A time zone whose every method raises: any use of an aware datetime asks it."""

    def utcoffset(self, moment: Any) -> Any:
        raise Boom("tzinfo.utcoffset")

    def dst(self, moment: Any) -> Any:
        raise Boom("tzinfo.dst")

    def tzname(self, moment: Any) -> Any:
        raise Boom("tzinfo.tzname")


class GarbageTz(tzinfo):
    """utcoffset() returns a str: datetime.utcoffset() raises TypeError."""

    def utcoffset(self, moment: Any) -> Any:
        return "garbage"


class BeyondADayTz(tzinfo):
    """utcoffset() returns 30 hours: datetime.utcoffset() raises ValueError (it must be under 24 h)."""

    def utcoffset(self, moment: Any) -> Any:
        return timedelta(hours=30)


class AstimezoneRaises(datetime):
    """An aware datetime whose astimezone() raises."""

    def astimezone(self, tz: Any = None) -> Any:
        raise Boom("datetime.astimezone")


class UtcoffsetRaises(datetime):
    """A datetime whose utcoffset() raises."""

    def utcoffset(self) -> Any:
        raise Boom("datetime.utcoffset")


def nested(depth: int) -> Dict[str, Any]:
    """A JSON object nested ``depth`` deep: copying it recursively raises RecursionError."""
    value: Dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def aware(tz: tzinfo) -> datetime:
    return datetime(2024, 1, 15, 10, 30, tzinfo=tz)


# -- the game's side: hook calls that note what escapes them -------------------------------------


class PlayClock:
    """A ManualClock whose monotonic reading can also leap on its own (ManualClock moves both)."""

    def __init__(self) -> None:
        self.manual = ManualClock()
        self._leapt = 0.0

    def monotonic(self) -> float:
        return self.manual.monotonic() + self._leapt

    def wall(self) -> float:
        return self.manual.wall()

    def advance(self, seconds: float) -> None:
        self.manual.advance(seconds)

    def jump_wall(self, seconds: float) -> None:
        self.manual.jump_wall(seconds)

    def leap(self, seconds: float) -> None:
        self._leapt += seconds


def _fresh(value: Any) -> Any:
    """A factory (a class, a lambda) is called for a fresh value; anything else is the value."""
    return value() if callable(value) else value


class Calls:
    """One hostile kind's calls, made as the game makes them: what escapes is noted, not raised."""

    def __init__(self, game: "Game", kind: "Kind") -> None:
        self.game = game
        self.kind = kind
        self.context: Any = None  # what setup left for call (a session)
        self.refused = False  # strict mode raised PayloadError
        self.escaped = False  # something else reached the caller
        self.numbers: List[int] = []  # body ids of a payload that may arrive (EITHER)

    def number(self) -> int:
        """A body id for this call's payload, which may arrive."""
        number = self.game.number()
        self.numbers.append(number)
        return number

    def hook(self, name: str, *arguments: Any, **keywords: Any) -> Any:
        return self.game.call(self, name, *arguments, **keywords)

    def event(self, **changes: Any) -> None:
        """on_character_event with a good event's arguments, except ``changes``."""
        arguments = dict(CHARACTER, event_name="hostile_event")
        arguments.update((field, _fresh(value)) for field, value in changes.items())
        name = arguments.pop("event_name")
        self.hook("on_character_event", name, **arguments)

    def session(self, **options: Any) -> None:
        """on_session_start with these options; a session that starts plays a second and ends."""
        options = {field: _fresh(value) for field, value in options.items()}
        user_id = options.pop("user_id", "hostile-" + uuid.uuid4().hex)
        session = self.hook("on_session_start", user_id, **options)
        if isinstance(session, playhooks.Session):
            self.game.clock.advance(1)
            self.hook("on_session_end", session)


class Game:
    """The game's side of a tracker: good and bad calls, what should arrive, what escaped."""

    def __init__(self, tracker: playhooks.Tracker, clock: PlayClock, mode: str) -> None:
        self.tracker = tracker
        self.clock = clock
        self.strict = mode == "strict"
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self.good_events: Set[int] = set()
        self.good_sessions: Set[str] = set()
        self.invocations: List[Calls] = []
        self.escapes: List[str] = []

    def number(self) -> int:
        with self._lock:
            return next(self._numbers)

    def calls(self, kind: "Kind") -> Calls:
        calls = Calls(self, kind)
        with self._lock:
            self.invocations.append(calls)
        return calls

    def call(self, calls: Optional[Calls], hook: str, *arguments: Any, **keywords: Any) -> Any:
        """Call a hook; note any exception that reaches the caller and should not have."""
        who = calls.kind.name if calls is not None else "a good call"
        try:
            return getattr(self.tracker, hook)(*arguments, **keywords)
        except PayloadError as error:
            try:
                message = str(error)
                if not isinstance(message, str):
                    self._escape(calls, f"{who}: str(PayloadError) from {hook} is a {type(message).__name__}")
            except Exception as inner:
                self._escape(calls, f"{who}: str(PayloadError) from {hook} raised {_describe(inner)}")
            if calls is not None and self.strict:
                calls.refused = True
            else:
                self._escape(calls, f"{who}: {hook} raised {_describe(error)}")
        except Exception as error:
            self._escape(calls, f"{who}: {hook} raised {_describe(error)}")
        return None

    def _escape(self, calls: Optional[Calls], problem: str) -> None:
        if calls is not None:
            calls.escaped = True
        with self._lock:
            self.escapes.append(problem)

    # -- good calls ------------------------------------------------------------------------------

    def good_event(self) -> None:
        number = self.number()
        with self._lock:
            self.good_events.add(number)
        self.call(None, "on_character_event", "level_completed", body={"n": number}, **CHARACTER)

    def good_session(self) -> None:
        """A session with a second of play."""
        session = self.call(None, "on_session_start", "player-" + uuid.uuid4().hex, **CHARACTER)
        if session is None:
            return
        self.clock.advance(1)
        self.call(None, "on_session_end", session)
        self._expect_session(session.id)

    def good_session_with_a_long_pause(self) -> None:
        """A pause past idle_timeout: the session ends at the pause, resume starts a new one."""
        session = self.call(None, "on_session_start", "player-" + uuid.uuid4().hex)
        if session is None:
            return
        self.clock.advance(2)
        self.call(None, "on_session_pause", session)
        self.clock.advance(IDLE_TIMEOUT + 1)
        self._expect_session(session.id)
        self.call(None, "on_session_resume", session)
        self.clock.advance(1)
        self.call(None, "on_session_end", session)
        self._expect_session(session.id)

    def paused_sessions(self, count: int) -> List[playhooks.Session]:
        """Sessions with two seconds of play, then paused: later leaps of the clock leave them be."""
        sessions = [self.call(None, "on_session_start", "player-" + uuid.uuid4().hex) for _ in range(count)]
        self.clock.advance(2)
        for session in sessions:
            self.call(None, "on_session_pause", session)
        return sessions

    def end(self, session: playhooks.Session) -> None:
        self.call(None, "on_session_end", session)
        self._expect_session(session.id)

    def _expect_session(self, session_id: str) -> None:
        with self._lock:
            self.good_sessions.add(session_id)


def _describe(error: BaseException) -> str:
    """``Type: message (at playhooks/file.py:line in function)``, safe whatever the error holds."""
    try:
        message = str(error)
    except Exception:
        message = "<str() raised>"
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if _in_library(frame.filename)]
    where = ""
    if frames:
        frame = frames[-1]
        module = frame.filename.rsplit(os.sep + "playhooks" + os.sep, 1)[-1]
        where = f" (at playhooks/{module}:{frame.lineno} in {frame.name})"
    return f"{type(error).__name__}: {message[:120]}{where}"


def _in_library(filename: str) -> bool:
    return os.sep + "playhooks" + os.sep in filename and os.sep + "tests" + os.sep not in filename


# -- the catalogue -------------------------------------------------------------------------------

BAD, EITHER, NOTHING = "bad", "either", "nothing"
RAISES, MAY_ACCEPT = "raises", "may accept"
INVALID_EVENT, INVALID_SESSION = "invalid_event", "invalid_session"


class Kind:
    """One hostile call: ``call`` makes it (on any thread), after ``setup`` (on the test's thread).

    ``cost``, ``reason`` and ``strict`` say what it may cost (see the module's docstring).
    ``last``: the many-threads test calls it after the threads end, since it moves the clock of
    every open session.
    """

    def __init__(
        self,
        name: str,
        call: Callable[[Calls], None],
        *,
        cost: str = BAD,
        reason: Optional[str] = INVALID_EVENT,
        strict: str = RAISES,
        setup: Optional[Callable[[Calls], None]] = None,
        last: bool = False,
    ) -> None:
        self.name = name
        self.call = call
        self.cost = cost
        self.reason = reason
        self.strict = strict
        self.setup = setup
        self.last = last

    def __repr__(self) -> str:
        return self.name


def bad_event(name: str, **changes: Any) -> Kind:
    """on_character_event with a good event's arguments but these."""
    return Kind(name, lambda calls: calls.event(**changes))


def odd_event(name: str, body: Callable[[int], Any], **changes: Any) -> Kind:
    """An event that may arrive: ``body(n)`` holds its id ``n``, behind a hostile interface."""
    return Kind(name, lambda calls: calls.event(body=body(calls.number()), **changes), cost=EITHER, strict=MAY_ACCEPT)


def bad_session(name: str, **options: Any) -> Kind:
    """on_session_start with these options (a session that starts plays a second and ends)."""
    return Kind(name, lambda calls: calls.session(**options), reason=INVALID_SESSION)


def misdirected(name: str, hook: str, target: Any) -> Kind:
    """A pause, resume or end given a garbage ``session=``: no payload is at stake."""
    return Kind(name, lambda calls: calls.hook(hook, session=_fresh(target)), cost=NOTHING, reason=None)


def _start_at_the_end_of_time(calls: Calls) -> None:
    """Start a session with the wall clock half a second before datetime.max, then set it back."""
    clock = calls.game.clock
    jump = END_OF_TIME.timestamp() - 0.5 - clock.wall()
    clock.jump_wall(jump)
    try:
        calls.context = calls.hook("on_session_start", "hostile-" + uuid.uuid4().hex)
    finally:
        clock.jump_wall(-jump)


def _play_a_second_and_end(calls: Calls) -> None:
    """Its end is a second after its start: past datetime.max."""
    if calls.context is not None:
        calls.game.clock.advance(1)
        calls.hook("on_session_end", calls.context)


def _start(calls: Calls) -> None:
    calls.context = calls.hook("on_session_start", "hostile-" + uuid.uuid4().hex)


def _leap_and_end(calls: Calls) -> None:
    """1e300 seconds pass: its end is no datetime at all."""
    if calls.context is not None:
        calls.game.clock.leap(1e300)
        calls.hook("on_session_end", calls.context)


def _player() -> str:
    return "player-" + uuid.uuid4().hex


EVENT_ARGUMENTS = ("event_name", "character_id", "playfab_id", "body", "timestamp", "custom_tags", "session")
SESSION_OPTIONS = (
    "user_id",
    "campaign_id",
    "creator_key",
    "platform",
    "metadata",
    "callback_id",
    "is_test",
    "playfab_id",
    "character_id",
)
WEST, EAST = timezone(timedelta(hours=-1)), timezone(timedelta(hours=1))

KINDS = [
    # event_name
    bad_event("event_name_lone_surrogate", event_name=LONE_SURROGATE),
    bad_event("event_name_str_subclass", event_name=lambda: type("Name", (str,), {})("level_completed")),
    bad_event("event_name_hostile_str", event_name=lambda: HostileStr("level_completed")),
    bad_event("event_name_repr_raises", event_name=lambda: ReprRaisesStr("level_completed")),
    bad_event("event_name_int_too_long", event_name=INT_TOO_LONG),
    # character_id, playfab_id
    bad_event("character_id_lone_surrogate", character_id="C" + LONE_SURROGATE),
    bad_event("playfab_id_repr_raises", playfab_id=ReprRaises),
    # body
    bad_event("body_value_lone_surrogate", body=lambda: {"text": LONE_SURROGATE}),
    bad_event("body_key_lone_surrogate", body=lambda: {LONE_SURROGATE: 1}),
    bad_event("body_not_a_mapping_repr_raises", body=ReprRaises),
    bad_event("body_value_repr_raises", body=lambda: {"x": ReprRaises()}),
    bad_event("body_key_repr_raises", body=lambda: {ReprRaises(): 1}),
    bad_event("body_class_raises", body=ClassRaises),
    bad_event("body_value_class_hash_raises", body=lambda: {"x": ClassHashRaises()}),
    bad_event("body_key_hash_raises", body=lambda: PairsMapping([(HashRaisesStr("k"), 1)])),
    bad_event("body_mapping_all_methods_raise", body=lambda: BrokenMapping({"a": 1})),
    bad_event("body_nested_mapping_raises", body=lambda: {"inner": BrokenMapping({"a": 1})}),
    bad_event("body_int_too_long", body=lambda: {"big": INT_TOO_LONG_FOR_A_BODY}),
    bad_event("body_nested_10000_deep", body=lambda: nested(10_000)),
    bad_event("body_nan_in_a_list", body=lambda: {"xs": [1.0, float("nan")]}),
    bad_event("body_inf_in_a_list", body=lambda: {"xs": [float("inf")]}),
    bad_event("body_bytes", body=lambda: {"b": b"bytes"}),
    bad_event("body_over_10_kib", body=lambda: {"text": "x" * 11_000}),
    odd_event("body_mapping_getitem_raises", lambda n: BrokenMapping({"n": n}, ["__getitem__"])),
    odd_event("body_mapping_iter_raises", lambda n: BrokenMapping({"n": n}, ["__iter__"])),
    odd_event("body_mapping_len_raises", lambda n: BrokenMapping({"n": n}, ["__len__"])),
    odd_event("body_mapping_items_raises", lambda n: BrokenMapping({"n": n}, ["items"])),
    odd_event("body_dict_copy_raises", lambda n: CopyRaisesDict(n=n)),
    odd_event("body_nested_dict_items_raise", lambda n: {"n": n, "inner": ItemsRaiseDict(a=1)}),
    odd_event("body_nested_dict_grows_while_read", lambda n: {"n": n, "inner": GrowsWhileIterated(a=1)}),
    odd_event("body_nested_list_changes_while_read", lambda n: {"n": n, "xs": ChangesWhileIterated([1, 2])}),
    # custom_tags
    bad_event("custom_tags_lone_surrogate", custom_tags=lambda: {"tag": LONE_SURROGATE}),
    bad_event("custom_tags_mapping_raises", custom_tags=lambda: BrokenMapping({"tag": "v"})),
    bad_event("custom_tags_key_repr_raises", custom_tags=lambda: {ReprRaisesStr("tag"): "v"}),
    # timestamp
    bad_event("timestamp_tz_raises", timestamp=lambda: aware(RaisingTz())),
    bad_event("timestamp_tz_offset_garbage", timestamp=lambda: aware(GarbageTz())),
    bad_event("timestamp_tz_offset_beyond_a_day", timestamp=lambda: aware(BeyondADayTz())),
    bad_event("timestamp_utcoffset_raises", timestamp=lambda: UtcoffsetRaises(2024, 1, 15, tzinfo=timezone.utc)),
    bad_event("timestamp_astimezone_raises", timestamp=lambda: AstimezoneRaises(2024, 1, 15, tzinfo=timezone.utc)),
    bad_event("timestamp_max_west_of_utc", timestamp=datetime.max.replace(tzinfo=WEST)),  # after datetime.max in UTC
    bad_event("timestamp_min_east_of_utc", timestamp=datetime.min.replace(tzinfo=EAST)),  # before datetime.min in UTC
    odd_event("timestamp_max_utc", lambda n: {"n": n}, timestamp=END_OF_TIME),
    odd_event("timestamp_min_utc", lambda n: {"n": n}, timestamp=START_OF_TIME),
    bad_event("timestamp_naive", timestamp=datetime(2024, 1, 15)),
    bad_event("timestamp_repr_raises", timestamp=ReprRaises),
    bad_event("timestamp_class_raises", timestamp=ClassRaises),
    # session= on an event
    bad_event("event_session_garbage", session=object),
    bad_event("event_session_repr_raises", session=ReprRaises),
    bad_event("event_session_class_raises", session=ClassRaises),
    bad_event("event_every_argument_repr_raises", **dict.fromkeys(EVENT_ARGUMENTS, ReprRaises)),
    # on_session_start
    bad_session("user_id_lone_surrogate", user_id=lambda: _player() + LONE_SURROGATE),
    bad_session("user_id_hostile_str", user_id=lambda: HostileStr(_player())),
    bad_session("user_id_repr_raises", user_id=lambda: ReprRaisesStr(_player())),
    bad_session("user_id_int_too_long", user_id=INT_TOO_LONG),
    bad_session("campaign_id_lone_surrogate", campaign_id="campaign-" + LONE_SURROGATE),
    bad_session("platform_eq_raises", platform=EqRaises),
    bad_session("is_test_repr_raises", is_test=ReprRaises),
    bad_session("metadata_lone_surrogate", metadata=lambda: {"note": LONE_SURROGATE}),
    bad_session("metadata_mapping_raises", metadata=lambda: BrokenMapping({"a": 1})),
    bad_session("metadata_int_too_long", metadata=lambda: {"big": INT_TOO_LONG_FOR_A_BODY}),
    bad_session("metadata_nested_10000_deep", metadata=lambda: nested(10_000)),
    bad_session("metadata_repr_raises", metadata=ReprRaises),
    bad_session("metadata_class_raises", metadata=ClassRaises),
    bad_session("session_every_option_repr_raises", **dict.fromkeys(SESSION_OPTIONS, ReprRaises)),
    # sessions the clock makes bad: the arguments were fine, so strict mode may accept them
    Kind(
        "session_ends_after_datetime_max",
        _play_a_second_and_end,
        setup=_start_at_the_end_of_time,
        reason=INVALID_SESSION,
        strict=MAY_ACCEPT,
    ),
    Kind(
        "session_duration_overflows",
        _leap_and_end,
        setup=_start,
        reason=INVALID_SESSION,
        strict=MAY_ACCEPT,
        last=True,
    ),
    # pause, resume and end aimed at garbage
    misdirected("end_session_garbage", "on_session_end", object),
    misdirected("end_session_repr_raises", "on_session_end", ReprRaises),
    misdirected("pause_session_class_raises", "on_session_pause", ClassRaises),
    misdirected("resume_session_repr_raises", "on_session_resume", ReprRaises),
]


# -- running a tracker and judging what happened -------------------------------------------------


@pytest.fixture
def emulator():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def open_tracker(emulator, tmp_path):
    """Makes a tracker for a mode, delivering to the emulator; returns it and its threads."""
    trackers = []

    def make(mode: str, clock: PlayClock, **settings: Any) -> Any:
        before = set(threading.enumerate())
        tracker = playhooks.Tracker(
            [playhooks.PlayCamp("key:secret", emulator.url), playhooks.PlayFab("ABCD", "secret", emulator.url)],
            spool_dir=str(tmp_path),
            clock=clock,
            idle_timeout=IDLE_TIMEOUT,
            retry=playhooks.RetryPolicy(base_delay=0.01, max_attempts=10_000),
            **MODES[mode],
            **settings,
        )
        trackers.append(tracker)
        threads = [thread for thread in set(threading.enumerate()) - before if thread.name.startswith(TRACKER_THREADS)]
        for prefix in TRACKER_THREADS:
            assert any(thread.name.startswith(prefix) for thread in threads), f"no {prefix} thread"
        return tracker, threads

    yield make
    for tracker in trackers:
        tracker.close(timeout=5)


def judge(game: Game, emulator: Emulator, threads: List[threading.Thread], caplog: Any, exact: bool) -> List[str]:
    """Flush, then list every broken promise; an empty list means all were kept.

    ``exact``: compare the drops reason by reason (else only their total).
    """
    tracker = game.tracker
    problems: List[str] = []
    pending = tracker.flush(timeout=10)
    problems += [f"the {thread.name} thread has died" for thread in threads if not thread.is_alive()]

    def events_by_number(emulator: Emulator) -> Dict[Any, int]:
        return collections.Counter(event.get("Body", {}).get("n") for event in emulator.events)

    maybe = {number for calls in game.invocations for number in calls.numbers}
    # flush() returning 0 means the services have everything they will get: no need to wait.
    emulator.wait_until(
        lambda emulator: game.good_events <= set(events_by_number(emulator))
        and game.good_sessions <= {session["sessionId"] for session in emulator.sessions},
        timeout=0.0 if pending == 0 else 10.0,
    )
    if pending:
        problems.append(f"flush(timeout=10) left {pending} payload(s) pending")
    arrived = events_by_number(emulator)
    sessions = {session["sessionId"] for session in emulator.sessions}

    problems += _counted(game.escapes)
    if game.strict:
        problems += [
            f"{calls.kind.name}: strict mode accepted it without PayloadError"
            for calls in game.invocations
            if calls.kind.strict == RAISES and not calls.refused and not calls.escaped
        ]
    lost_events = sorted(game.good_events - set(arrived))
    if lost_events:
        problems.append(f"{len(lost_events)} of {len(game.good_events)} good events never arrived (n: {lost_events[:20]})")
    lost_sessions = game.good_sessions - sessions
    if lost_sessions:
        problems.append(f"{len(lost_sessions)} of {len(game.good_sessions)} good sessions never arrived")
    stray = sorted(str(number) for number in arrived if number not in game.good_events and number not in maybe)
    if stray:
        problems.append(f"events arrived that are neither good nor allowed to (n: {stray})")
    stray_sessions = sessions - game.good_sessions
    if stray_sessions:
        problems.append(f"{len(stray_sessions)} bad session(s) arrived")
    rejected = tracker.stats().get("refused_by_service", 0)
    if rejected:
        problems.append(f"the services refused {rejected} payload(s) the tracker had accepted")

    expected: Dict[str, int] = collections.Counter()
    for calls in game.invocations:
        kind = calls.kind
        if calls.refused or calls.escaped or kind.cost == NOTHING:
            continue  # refused (strict), reported as escaped, or no payload at all
        if kind.cost == EITHER and calls.numbers and all(number in arrived for number in calls.numbers):
            continue
        expected[kind.reason] += 1  # type: ignore[index]
    dropped = tracker.stats()["dropped"]
    if (dict(expected) != dropped) if exact else (sum(expected.values()) != sum(dropped.values())):
        problems.append(
            f"dropped {dict(sorted(dropped.items()))} (total {sum(dropped.values())}), "
            f"expected {dict(sorted(expected.items()))} (total {sum(expected.values())})"
        )
    if problems:
        tracker.flush(timeout=10)  # the worker logs a failed round after the round: wait for it
        logged = _logged_tracebacks(caplog)
        if logged:
            problems += ["-- for context, what playhooks logged with a traceback (a lost batch shows here):"] + logged
    return problems


def _counted(lines: List[str]) -> List[str]:
    """Each distinct line once, with how many times it came when more than once."""
    return [line if count == 1 else f"{line} (x{count})" for line, count in collections.Counter(lines).items()]


def _logged_tracebacks(caplog: Any) -> List[str]:
    return _counted(
        [
            f"{record.getMessage()}: {_describe(record.exc_info[1])}"
            for record in caplog.records
            if record.name == "playhooks" and record.exc_info and record.exc_info[1] is not None
        ]
    )


# -- the tests -----------------------------------------------------------------------------------


class TestOneBadCall:
    @pytest.mark.parametrize("mode", list(MODES))
    @pytest.mark.parametrize("kind", KINDS, ids=repr)
    def test_costs_only_itself(self, kind, mode, open_tracker, emulator, caplog):
        """A hostile call between good ones in one worker round: the good ones arrive, it is counted."""
        clock = PlayClock()
        # The worker wakes only for flush(): the five payloads below are one round, one batch.
        tracker, threads = open_tracker(mode, clock, flush_interval=60.0)
        game = Game(tracker, clock, mode)
        before, after = game.paused_sessions(2)
        calls = game.calls(kind)
        if kind.setup is not None:
            kind.setup(calls)
        game.end(before)
        game.good_event()
        kind.call(calls)
        game.good_event()
        game.end(after)

        problems = judge(game, emulator, threads, caplog, exact=True)
        assert not problems, "\n".join(problems)


class TestManyThreads:
    THREADS = 6
    REPEATS = 2  # calls of each hostile kind
    GOOD_EVENTS = 150
    GOOD_SESSIONS = 24
    LONG_PAUSES = 6

    @pytest.mark.parametrize("mode", list(MODES))
    def test_hundreds_of_mixed_calls(self, mode, open_tracker, emulator, caplog):
        """Good and hostile calls shuffled over six threads: every good payload arrives, every bad
        one is counted, nothing but PayloadError (strict) reaches a caller, and the threads live."""
        clock = PlayClock()
        tracker, threads = open_tracker(mode, clock)
        game = Game(tracker, clock, mode)
        jobs: List[Callable[[], None]] = (
            [game.good_event] * self.GOOD_EVENTS
            + [game.good_session] * self.GOOD_SESSIONS
            + [game.good_session_with_a_long_pause] * self.LONG_PAUSES
        )
        last = []
        for kind in KINDS:
            for _ in range(self.REPEATS):
                calls = game.calls(kind)
                if kind.setup is not None:
                    kind.setup(calls)
                (last if kind.last else jobs).append(functools.partial(kind.call, calls))
        random.Random(20261129).shuffle(jobs)
        start = threading.Barrier(self.THREADS)
        test_bugs: List[str] = []

        def play(share: List[Callable[[], None]]) -> None:
            start.wait(timeout=30)
            for job in share:
                try:
                    job()
                except Exception as error:  # Game.call catches the hooks' own: this is the test's
                    test_bugs.append(_describe(error))

        players = [threading.Thread(target=play, args=(jobs[i :: self.THREADS],)) for i in range(self.THREADS)]
        for player in players:
            player.start()
        for player in players:
            player.join(timeout=60)
        assert [] == [player.name for player in players if player.is_alive()]
        for job in last:
            job()
        game.good_event()  # in the same round as the last hostile calls
        game.good_event()

        problems = judge(game, emulator, threads, caplog, exact=False)
        assert not test_bugs, "\n".join(test_bugs)
        assert not problems, "\n".join(problems)
        assert 0 == tracker.close(timeout=5)
