"""The payloads, as attrs models with Python names and every rule of the two API contracts.

Models know nothing of JSON keys or transports: ``_wire`` turns them into the exact bytes each
service expects. Every rule failure raises ``PayloadError`` naming the field and the rule, so the
client, the emulator and (later) the relay reject the same things with the same words.

Rules that are our own choice, not the services' (see ``spec/apis-notes.md``):
- Required strings must be non-empty: an empty id cannot identify anything.
- ``EventName`` matches ``^[A-Za-z0-9_]{1,64}$``: PlayFab publishes no limit for this call; this
  is the convention its docs show (``player_logged_in``) with a length we can store anywhere.
- ``Body`` and ``metadata`` must encode to at most ``MAX_JSON_OBJECT_BYTES`` (10 KiB) of compact
  UTF-8 JSON: PlayFab's telemetry events allow 10 KB and its older LogEvent 32 KB, so 10 KiB is
  safe for both and keeps one payload small enough for the spool and the queue bounds.

The model classes are made on first use (see ``__getattr__`` at the end): making an attrs class
compiles its methods, about a millisecond each, and a game's start needs none of them. The worker
builds the payloads, the sender and the emulator read the answers; the validators below, which
``SessionOptions`` shares, are plain functions and load with the module.
"""

import collections.abc
import math
import re
import threading
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Tuple

import attrs

from ._errors import PayloadError

PLATFORMS = ("iOS", "Android", "Web", "Roblox", "Other")
CREATOR_KEY_PATTERN = re.compile(r"[A-Z0-9]{5}")
EVENT_NAME_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")
MAX_JSON_OBJECT_BYTES = 10 * 1024
MAX_BULK_SESSIONS = 1000
BULK_STATUSES = ("SUCCESS", "SKIPPED", "FAILED")


# -- validators: each raises PayloadError(field, rule) -------------------------------------------
# (``isinstance`` checks use ``collections.abc.Mapping``: ``typing.Mapping`` answers them five
# times slower, and the worker makes several per event.)


def _text(field: str, value: Any) -> None:
    """PayloadError unless ``value`` is a str that UTF-8 can carry: a lone surrogate (``"\\ud800"``)
    is a str Python accepts and no JSON body, spool file or log can encode."""
    if type(value) is not str:
        raise PayloadError(field, "must be a string", value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError(field, "must be valid Unicode text (a lone surrogate is not)", value) from None


def required_text(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not str or not value:
        raise PayloadError(attribute.name, "must be a non-empty string", value)
    if not value.isascii():  # ASCII is always valid text: the common case costs no call
        _text(attribute.name, value)


def optional_text(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is None:
        return
    if type(value) is not str or not value:
        raise PayloadError(attribute.name, "must be a non-empty string when given", value)
    if not value.isascii():
        _text(attribute.name, value)


def _positive_int(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    # bool is an int subclass, and JSON has no such confusion: reject it explicitly.
    if type(value) is not int:
        raise PayloadError(attribute.name, "must be an integer", value)
    if value < 1:
        raise PayloadError(attribute.name, "must be >= 1", value)


def _count(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not int or value < 0:
        raise PayloadError(attribute.name, "must be an integer >= 0", value)


def _flag(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not bool:
        raise PayloadError(attribute.name, "must be true or false", value)


def optional_flag(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is not None:
        _flag(instance, attribute, value)


def _to_utc(value: Any, field: "attrs.Attribute[Any]") -> Any:
    """Converter: an aware datetime becomes a plain UTC datetime; anything else is left for the
    validator. Its time zone is the caller's code, and may raise or overflow."""
    if type(value) is datetime and value.tzinfo is timezone.utc and not value.fold:
        return value  # already what the conversion would make: the worker's own timestamps
    if not isinstance(value, datetime):
        return value
    try:
        if value.utcoffset() is None:
            return value
        moment = value.astimezone(timezone.utc)
        return datetime(
            moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond,
            tzinfo=timezone.utc,
        )
    except Exception as error:
        raise PayloadError(
            field.name, f"must be an aware datetime within years 1 to 9999 in UTC ({type(error).__name__})", value
        ) from None


_utc = attrs.Converter(_to_utc, takes_field=True)  # type: ignore[call-overload]


def _aware_datetime(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, datetime):
        raise PayloadError(attribute.name, "must be a datetime", value)
    if value.utcoffset() is None:
        raise PayloadError(attribute.name, "must be timezone-aware (a naive datetime is ambiguous)", value)


def _optional_aware_datetime(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is not None:
        _aware_datetime(instance, attribute, value)


def creator_key_format(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is not None and (type(value) is not str or not CREATOR_KEY_PATTERN.fullmatch(value)):
        raise PayloadError(attribute.name, "must be 5 uppercase letters or digits (^[A-Z0-9]{5}$)", value)


def platform_choice(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is not None and (type(value) is not str or value not in PLATFORMS):
        raise PayloadError(attribute.name, "must be one of " + ", ".join(PLATFORMS), value)


def _event_name(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if type(value) is not str or not EVENT_NAME_PATTERN.fullmatch(value):
        raise PayloadError(
            attribute.name, "must be 1 to 64 letters, digits or underscores (^[A-Za-z0-9_]{1,64}$)", value
        )


def _plain_dict(value: Any, field: "attrs.Attribute[Any]") -> Any:
    """Converter: any mapping (Ren'Py's rollback-aware dicts included) becomes a plain dict copy."""
    if value is None:
        return None
    try:
        return dict(value) if isinstance(value, collections.abc.Mapping) else value
    except Exception as error:  # the caller's mapping: its methods may raise anything
        raise PayloadError(field.name, f"must be a readable mapping ({type(error).__name__} reading it)", show_value=False) from None


plain_dict = attrs.Converter(_plain_dict, takes_field=True)  # type: ignore[call-overload]

MAX_JSON_DEPTH = 32
# Integers past 64 bits lose digits in most JSON readers (and Python refuses to print huge ones).
_MAX_JSON_INT = 2**63
# What one value can take at most in compact UTF-8 JSON, to bound an object's size while copying
# it: a character, 6 bytes (a control character is escaped as \u001f; any other is at most 4 in
# UTF-8); a number, 24 ("-2.2250738585072014e-308"; an int below 2**63 has at most 20).
_MOST_PER_CHAR = 6
_MOST_PER_NUMBER = 24


def copy_json(value: Any, field: "attrs.Attribute[Any]") -> Any:
    """Converter: a deep copy of a JSON object in plain dicts and lists, or PayloadError.

    Deep, because the game may change a nested list after the call; checked on the way, because
    ``json.dumps`` would quietly turn ``{1: "a"}`` into ``{"1": "a"}`` and NaN into invalid JSON;
    and sized: its compact UTF-8 JSON must fit ``MAX_JSON_OBJECT_BYTES``. The copy bounds that
    size as it goes, and the object is encoded to measure it only when the bound does not settle it.
    """
    if value is None:
        return None
    try:
        if type(value) is not dict and not isinstance(value, collections.abc.Mapping):
            raise PayloadError(field.name, "must be a mapping of string keys to JSON values", value)
        copy, most = _json_object(value, field.name, 0)
    except PayloadError:
        raise
    except Exception as error:  # the caller's objects: a mapping whose items() raises, say
        raise PayloadError(field.name, f"must be readable JSON values ({type(error).__name__} reading it)", show_value=False) from None
    if most > MAX_JSON_OBJECT_BYTES:
        size = _encoded_size(copy)
        if size > MAX_JSON_OBJECT_BYTES:
            raise PayloadError(
                field.name, f"must encode to at most {MAX_JSON_OBJECT_BYTES} bytes of JSON, not {size}", show_value=False
            )
    return copy


def _json_object(value: Mapping, field: str, depth: int) -> Tuple[Dict[str, Any], int]:
    """A checked copy of a mapping, and the most bytes its JSON can take.

    The scalars of an object are checked here rather than by a call each: most bodies hold
    nothing else, and the worker copies one per event.
    """
    copy = {}
    most = 2  # the braces; each item below counts a comma too, one more than there are
    for key, item in value.items():
        if type(key) is not str:
            raise PayloadError(field, "keys must be strings", key)
        if not key.isascii():
            _text(field, key)
        kind = type(item)
        if kind is str:
            if not item.isascii():
                _text(field, item)
            most += _MOST_PER_CHAR * (len(key) + len(item)) + 6  # four quotes, a colon and a comma
        elif kind is int and -_MAX_JSON_INT <= item < _MAX_JSON_INT:
            most += _MOST_PER_CHAR * len(key) + 4 + _MOST_PER_NUMBER
        elif kind is bool or item is None:
            most += _MOST_PER_CHAR * len(key) + 4 + 5
        else:
            item, inner = _json_value(item, field, depth + 1)
            most += _MOST_PER_CHAR * len(key) + 4 + inner
        copy[key] = item
    return copy, most


def _json_value(value: Any, field: str, depth: int) -> Tuple[Any, int]:
    """A checked copy of any JSON value, and the most bytes its JSON can take."""
    kind = type(value)
    if kind is str:
        _text(field, value)
        return value, _MOST_PER_CHAR * len(value) + 2
    if kind is bool or value is None:
        return value, 5
    if kind is int:
        if not -_MAX_JSON_INT <= value < _MAX_JSON_INT:
            raise PayloadError(field, "integers must fit in 64 bits", show_value=False)
        return value, _MOST_PER_NUMBER
    if kind is float:
        if not math.isfinite(value):
            raise PayloadError(field, "must hold only JSON values, and NaN or Infinity is not one", value)
        return value, _MOST_PER_NUMBER
    if depth >= MAX_JSON_DEPTH:
        raise PayloadError(field, f"must hold only JSON values, nested at most {MAX_JSON_DEPTH} deep", show_value=False)
    if type(value) is dict or isinstance(value, collections.abc.Mapping):
        return _json_object(value, field, depth)
    if isinstance(value, (list, tuple)):
        copy = []
        most = 2
        for item in value:
            item, inner = _json_value(item, field, depth + 1)
            copy.append(item)
            most += inner + 1
        return copy, most
    raise PayloadError(field, "must hold only JSON values: str, int, float, bool, None, lists and mappings", value)


def _encoded_size(value: Any) -> int:
    """Bytes of compact UTF-8 JSON. Needed only past the bound, so json loads only then."""
    import json

    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


json_copy = attrs.Converter(copy_json, takes_field=True)  # type: ignore[call-overload]


def _string_map(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise PayloadError(attribute.name, "must be a mapping of strings to strings", value)
    for key, item in value.items():
        if type(key) is not str or type(item) is not str:
            raise PayloadError(attribute.name, "must map strings to strings", {key: item})
        _text(attribute.name, key)
        _text(attribute.name, item)


def _tuple(value: Any, field: "attrs.Attribute[Any]") -> Any:
    if not isinstance(value, (list, tuple)):
        raise PayloadError(field.name, "must be a list", value)
    return tuple(value)


as_tuple = attrs.Converter(_tuple, takes_field=True)  # type: ignore[call-overload]


def _bulk_sessions(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not 1 <= len(value) <= MAX_BULK_SESSIONS:
        raise PayloadError(
            attribute.name, f"must hold 1 to {MAX_BULK_SESSIONS} sessions, not {len(value)}", show_value=False
        )
    for item in value:
        if not isinstance(item, PlaytimeSession):  # a global once _make_models has run
            raise PayloadError(attribute.name, "must hold PlaytimeSession items", item)


def _items_of(cls: type) -> Any:
    def validate(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        for item in value:
            if not isinstance(item, cls):
                raise PayloadError(attribute.name, f"must hold {cls.__name__} items", item)

    return validate


def _bulk_status(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value not in BULK_STATUSES:
        raise PayloadError(attribute.name, "must be one of " + ", ".join(BULK_STATUSES), value)


# -- the models, made by _make_models on first use ----------------------------------------------

MODEL_NAMES = (
    "PlaytimeSession",
    "PlaytimeSessionResult",
    "BulkPlaytimeRequest",
    "BulkItemResult",
    "BulkPlaytimeResult",
    "PlayCampErrorDetail",
    "PlayCampError",
    "CharacterEvent",
    "CharacterEventResult",
    "PlayFabError",
)
_making = threading.Lock()


def __getattr__(name: str) -> Any:
    """The models, made on first use: ``_models.CharacterEvent``, ``from ._models import PlayFabError``."""
    if name not in MODEL_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _making:  # two threads asking at once must get the same classes
        if name not in globals():
            globals().update(_make_models())
    return globals()[name]


def _make_models() -> Dict[str, type]:
    """Every model class, by name: called once, by ``__getattr__``."""

    # -- PlayCamp: Record Playtime Session ------------------------------------------------------

    @attrs.frozen
    class PlaytimeSession:
        """One play session, as PlayCamp records it (``POST /v1/server/playtime/sessions``)."""

        session_id: str = attrs.field(validator=required_text)
        user_id: str = attrs.field(validator=required_text)
        duration_seconds: int = attrs.field(validator=_positive_int)
        started_at: datetime = attrs.field(converter=_utc, validator=_aware_datetime)
        ended_at: datetime = attrs.field(converter=_utc, validator=_aware_datetime)
        campaign_id: Optional[str] = attrs.field(default=None, validator=optional_text)
        creator_key: Optional[str] = attrs.field(default=None, validator=creator_key_format)
        platform: Optional[str] = attrs.field(default=None, validator=platform_choice)
        metadata: Optional[Mapping[str, Any]] = attrs.field(default=None, converter=json_copy)
        callback_id: Optional[str] = attrs.field(default=None, validator=optional_text)
        is_test: Optional[bool] = attrs.field(default=None, validator=optional_flag)

        def __attrs_post_init__(self) -> None:
            if self.ended_at < self.started_at:
                raise PayloadError("ended_at", "must not precede the start", self.ended_at)

    @attrs.frozen
    class PlaytimeSessionResult:
        """PlayCamp's answer to one recorded session (``data`` of the response)."""

        session_id: str = attrs.field(validator=required_text)
        user_id: str = attrs.field(validator=required_text)
        duration_seconds: int = attrs.field(validator=_positive_int)
        recorded: bool = attrs.field(validator=_flag)
        created_at: datetime = attrs.field(converter=_utc, validator=_aware_datetime)

    @attrs.frozen
    class BulkPlaytimeRequest:
        """Many sessions in one request (``POST /v1/server/playtime/sessions/bulk``)."""

        sessions: Tuple[PlaytimeSession, ...] = attrs.field(converter=as_tuple, validator=_bulk_sessions)
        callback_id: Optional[str] = attrs.field(default=None, validator=optional_text)
        is_test: Optional[bool] = attrs.field(default=None, validator=optional_flag)

    @attrs.frozen
    class BulkItemResult:
        """What happened to one session of a bulk request."""

        session_id: str = attrs.field(validator=required_text)
        status: str = attrs.field(validator=_bulk_status)
        error: Optional[str] = attrs.field(default=None, validator=optional_text)

    @attrs.frozen
    class BulkPlaytimeResult:
        """PlayCamp's answer to a bulk request (``data`` of the response)."""

        total_requested: int = attrs.field(validator=_count)
        successful: int = attrs.field(validator=_count)
        failed: int = attrs.field(validator=_count)
        skipped: int = attrs.field(validator=_count)
        results: Tuple[BulkItemResult, ...] = attrs.field(converter=as_tuple, validator=_items_of(BulkItemResult))

    @attrs.frozen
    class PlayCampErrorDetail:
        """One entry of a PlayCamp validation error's ``details``."""

        message: str
        path: Optional[str] = None
        target: Optional[str] = None

    @attrs.frozen
    class PlayCampError:
        """A PlayCamp error body: ``{"code": "VALIDATION_ERROR", "error": "...", "details": [...]}``."""

        code: str
        error: str
        details: Tuple[PlayCampErrorDetail, ...] = attrs.field(
            default=(), converter=as_tuple, validator=_items_of(PlayCampErrorDetail)
        )

    # -- PlayFab: WriteCharacterEvent -----------------------------------------------------------

    @attrs.frozen
    class CharacterEvent:
        """One character event, as PlayFab takes it (``POST /Server/WriteCharacterEvent``)."""

        character_id: str = attrs.field(validator=required_text)
        event_name: str = attrs.field(validator=_event_name)
        playfab_id: str = attrs.field(validator=required_text)
        body: Optional[Mapping[str, Any]] = attrs.field(default=None, converter=json_copy)
        timestamp: Optional[datetime] = attrs.field(default=None, converter=_utc, validator=_optional_aware_datetime)
        custom_tags: Optional[Mapping[str, str]] = attrs.field(
            default=None, converter=plain_dict, validator=_string_map
        )

    @attrs.frozen
    class CharacterEventResult:
        """PlayFab's answer to a written event (``data`` of the envelope)."""

        event_id: str = attrs.field(validator=required_text)

    @attrs.frozen
    class PlayFabError:
        """PlayFab's ``ApiErrorWrapper``: every failure of every call has this shape."""

        code: int
        status: str
        error: str
        error_code: int
        error_message: str
        error_details: Optional[Mapping[str, Tuple[str, ...]]] = None
        retry_after_seconds: Optional[int] = None

    made = [
        PlaytimeSession,
        PlaytimeSessionResult,
        BulkPlaytimeRequest,
        BulkItemResult,
        BulkPlaytimeResult,
        PlayCampErrorDetail,
        PlayCampError,
        CharacterEvent,
        CharacterEventResult,
        PlayFabError,
    ]
    for cls in made:
        cls.__qualname__ = cls.__name__  # as if made at the top of the module: for repr, pickle, docs
    return {cls.__name__: cls for cls in made}
