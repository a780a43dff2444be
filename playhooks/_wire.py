"""The one module that knows the two services' JSON.

PlayCamp speaks camelCase (``sessionId``), PlayFab's requests and ``data`` speak PascalCase
(``PlayFabId``) while its error wrapper is camelCase (``errorCode``). Each service has a private
``cattrs.Converter`` built completely in ``_build_converter``; models keep their Python names.

Both directions are strict where a server must be: ``structure`` rejects ``"7"`` or ``true`` for an
integer, a timestamp in any but the one format, and unknown fields of a request, raising
``PayloadError`` with the JSON path of the field (``sessions[2].creatorKey``).

The client never loads cattrs: the worker turns the two requests it builds, one per payload, into
JSON with the hand-written ``_session_json`` and ``_event_json`` (a test holds them to what the
converters make), and the sinks send them with ``encode``. The converters, and cattrs with them
(tens of milliseconds of the worker's first round otherwise), are built on first use, by whoever
reads JSON into models or writes the answers: the emulator, the tests.
"""

import collections.abc
import json
import re
import threading
import typing
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Type, TypeVar

import attrs

from . import _models
from ._errors import PayloadError

if TYPE_CHECKING:
    import cattrs

Model = TypeVar("Model")

# [0-9], not \d: \d also matches other scripts' digits, which int() would then read.
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})Z")


def format_timestamp(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:mm:ss.sssZ`` in UTC, milliseconds truncated: the only format either API takes."""
    if moment.tzinfo is not timezone.utc:  # a model's are (see _models._to_utc): no conversion
        if moment.utcoffset() is None:
            raise ValueError("a naive datetime has no time zone: give an aware one")
        moment = moment.astimezone(timezone.utc)
    # Not strftime: it does not zero-pad years below 1000 on every platform.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


def parse_timestamp(text: Any) -> datetime:
    """The inverse of ``format_timestamp``; anything but that exact format is a ``ValueError``."""
    match = _TIMESTAMP.fullmatch(text) if type(text) is str else None
    if match is None:
        raise ValueError("must be a UTC timestamp formatted YYYY-MM-DDTHH:mm:ss.sssZ")
    year, month, day, hour, minute, second, millis = (int(part) for part in match.groups())
    return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=timezone.utc)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _pascal(name: str) -> str:
    return "PlayFabId" if name == "playfab_id" else "".join(part.capitalize() for part in name.split("_"))


# The key style of each model, by service; the classes are made on first use (see _models).
_PLAYCAMP_STYLES: Dict[str, Callable[[str], str]] = {
    "PlaytimeSession": _camel,
    "PlaytimeSessionResult": _camel,
    "BulkPlaytimeRequest": _camel,
    "BulkItemResult": _camel,
    "BulkPlaytimeResult": _camel,
    "PlayCampError": _camel,
    "PlayCampErrorDetail": _camel,
}
_PLAYFAB_STYLES: Dict[str, Callable[[str], str]] = {
    "CharacterEvent": _pascal,
    "CharacterEventResult": _pascal,
    "PlayFabError": _camel,  # PlayFab's ApiErrorWrapper is camelCase, unlike its requests and data
}
_STYLES = {**_PLAYCAMP_STYLES, **_PLAYFAB_STYLES}
# PlayCamp refuses fields it does not know; PlayFab, like most APIs, ignores them.
_CLOSED_REQUESTS = ("PlaytimeSession", "BulkPlaytimeRequest")


def wire_name(cls: type, field: str) -> str:
    """The JSON key of a model's field: ``wire_name(CharacterEvent, "playfab_id") == "PlayFabId"``."""
    return _STYLES[cls.__name__](field)


# -- the two requests the worker writes, one per payload: by hand, for speed -------------------


def _session_json(session: Any) -> Dict[str, Any]:
    """A ``PlaytimeSession`` as PlayCamp takes it: what its converter makes, without cattrs."""
    data = {
        "sessionId": session.session_id,
        "userId": session.user_id,
        "durationSeconds": session.duration_seconds,
        "startedAt": format_timestamp(session.started_at),
        "endedAt": format_timestamp(session.ended_at),
    }
    if session.campaign_id is not None:
        data["campaignId"] = session.campaign_id
    if session.creator_key is not None:
        data["creatorKey"] = session.creator_key
    if session.platform is not None:
        data["platform"] = session.platform
    if session.metadata is not None:
        data["metadata"] = _copy(session.metadata)
    if session.callback_id is not None:
        data["callbackId"] = session.callback_id
    if session.is_test is not None:
        data["isTest"] = session.is_test
    return data


def _event_json(event: Any) -> Dict[str, Any]:
    """A ``CharacterEvent`` as PlayFab takes it: what its converter makes, in half the time."""
    data = {"CharacterId": event.character_id, "EventName": event.event_name, "PlayFabId": event.playfab_id}
    if event.body is not None:
        data["Body"] = _copy(event.body)
    if event.timestamp is not None:
        data["Timestamp"] = format_timestamp(event.timestamp)
    if event.custom_tags is not None:
        data["CustomTags"] = dict(event.custom_tags)
    return data


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy(value: Any) -> Any:
    """A copy of a model's JSON object (plain dicts, lists and scalars, as its converter left it),
    so the JSON shares nothing with the model, as the converters' never does."""
    if type(value) is dict:
        if _SCALARS.issuperset(map(type, value.values())):
            return value.copy()
        return {key: _copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy(item) for item in value]
    return value


def _strict(kind: type, rule: str) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        # type() rather than isinstance: True is an int and 2.0 is not 2 on the wire.
        if type(value) is not kind:
            raise ValueError(rule)
        return value

    return structure


def _is_tuple(type_: Any) -> bool:
    return typing.get_origin(type_) is tuple


def _array(type_: Any, converter: "cattrs.Converter") -> Callable[[Any, Any], Any]:
    from cattrs.cols import homogenous_tuple_structure_factory

    items = homogenous_tuple_structure_factory(type_, converter)

    def structure(value: Any, _: Any) -> Any:
        if type(value) is not list:
            raise ValueError("must be an array")
        return items(value, type_)

    return structure


def _is_mapping(type_: Any) -> bool:
    return typing.get_origin(type_) is collections.abc.Mapping


def _object(type_: Any, converter: "cattrs.Converter") -> Callable[[Any, Any], Any]:
    from cattrs.cols import mapping_structure_factory

    entries = mapping_structure_factory(type_, converter)

    def structure(value: Any, _: Any) -> Any:
        if type(value) is not dict:
            raise ValueError("must be an object")
        return entries(value, type_)

    return structure


def _build_converter(styles: Dict[str, Callable[[str], str]]) -> "cattrs.Converter":
    """One service's converter: strict scalars, the one timestamp format, its models' key names."""
    import cattrs
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    converter = cattrs.Converter(detailed_validation=True)
    converter.register_structure_hook(int, _strict(int, "must be an integer"))
    converter.register_structure_hook(str, _strict(str, "must be a string"))
    converter.register_structure_hook(bool, _strict(bool, "must be true or false"))
    converter.register_structure_hook(datetime, lambda value, _: parse_timestamp(value))
    # JSON arrays and objects only: cattrs alone would take any iterable (a string, an object's
    # keys) as a tuple, and fail on a list given for a mapping with Python's own words.
    converter.register_structure_hook_factory(_is_tuple, lambda type_: _array(type_, converter))
    converter.register_structure_hook_factory(_is_mapping, lambda type_: _object(type_, converter))
    converter.register_unstructure_hook(datetime, format_timestamp)
    for name, style in styles.items():
        cls = getattr(_models, name)
        renames = {field.name: override(rename=style(field.name)) for field in attrs.fields(cls)}
        converter.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, converter, _cattrs_omit_if_default=True, **renames)
        )
        converter.register_structure_hook(
            cls,
            make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=name in _CLOSED_REQUESTS, **renames),
        )
    return converter


class _Formats:
    """Both services' converters, and the model classes each speaks for."""

    def __init__(self) -> None:
        self.playcamp = _build_converter(_PLAYCAMP_STYLES)
        self.playfab = _build_converter(_PLAYFAB_STYLES)
        self.playcamp_models = frozenset(getattr(_models, name) for name in _PLAYCAMP_STYLES)
        self.styles = {getattr(_models, name): style for name, style in _STYLES.items()}

    def converter_for(self, cls: type) -> "cattrs.Converter":
        return self.playcamp if cls in self.playcamp_models else self.playfab


_built: Optional[_Formats] = None
_building = threading.Lock()


def _formats() -> _Formats:
    """The converters, built on first use (cattrs loads here), once whatever the threads."""
    global _built
    if _built is None:
        with _building:
            if _built is None:
                _built = _Formats()
    return _built


def prepare() -> None:
    """Build the converters now rather than at the first ``structure``: a server calls it as it
    starts, so that its first request does not wait for them."""
    _formats()


def unstructure(model: Any) -> Dict[str, Any]:
    """A model as the JSON object its service sends or answers, optional fields left out when unset."""
    cls = type(model)
    if cls is _models.CharacterEvent:
        return _event_json(model)
    if cls is _models.PlaytimeSession:
        return _session_json(model)
    return _formats().converter_for(cls).unstructure(model)


def structure(data: Any, cls: Type[Model]) -> Model:
    """A JSON object (already decoded) as a model, by the strict rules a server applies.

    Raises:
        PayloadError: the first broken rule, its ``field`` the JSON path (``sessions[0].userId``).
    """
    from cattrs.errors import ClassValidationError, IterableValidationError

    if not isinstance(data, collections.abc.Mapping):
        raise PayloadError("$", "must be a JSON object", data)
    formats = _formats()
    try:
        return formats.converter_for(cls).structure(data, cls)
    except (ClassValidationError, IterableValidationError) as error:
        raise _first_problem(error, cls, "", formats.styles) from None


def _first_problem(error: BaseException, cls: Any, path: str, styles: Dict[type, Any]) -> PayloadError:
    """Turn cattrs' tree of errors into one PayloadError that names the JSON path."""
    from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

    for inner in getattr(error, "exceptions", ()):
        step, inner_cls = path, cls
        for note in getattr(inner, "__notes__", ()):
            if hasattr(note, "name") and cls in styles:
                step = _join(path, wire_name(cls, note.name))
                inner_cls = _item_type(note.type, styles)
            elif hasattr(note, "index") and isinstance(note.index, int):
                step = f"{path}[{note.index}]"
                inner_cls = _item_type(note.type, styles)
        if isinstance(inner, (ClassValidationError, IterableValidationError)):
            return _first_problem(inner, inner_cls, step, styles)
        if isinstance(inner, ForbiddenExtraKeysError):
            unknown = ", ".join(sorted(inner.extra_fields))
            return PayloadError(path or "$", f"has unknown fields: {unknown}", show_value=False)
        if isinstance(inner, KeyError):
            return PayloadError(step, "is required", show_value=False)
        if isinstance(inner, PayloadError):
            # A model's own rule: its field is the Python name of an attribute of cls.
            return PayloadError(_join(path, wire_name(cls, inner.field)), inner.rule, show_value=False)
        return PayloadError(step or "$", str(inner) or type(inner).__name__, show_value=False)
    return PayloadError(path or "$", str(error), show_value=False)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _item_type(annotation: Any, styles: Dict[type, Any]) -> Any:
    """The model class inside ``Tuple[Model, ...]`` or ``Optional[Model]``, if there is one."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if candidate in styles:
            return candidate
    return annotation


def encode(data: Any) -> bytes:
    """Compact UTF-8 JSON, as sent on the wire (NaN and Infinity refused: they are not JSON)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def playfab_envelope(result: "_models.CharacterEventResult") -> Dict[str, Any]:
    """PlayFab's success envelope: ``{"code": 200, "status": "OK", "data": {...}}``."""
    return {"code": 200, "status": "OK", "data": unstructure(result)}


def playcamp_envelope(result: Any) -> Dict[str, Any]:
    """PlayCamp's success envelope: ``{"data": {...}}``."""
    return {"data": unstructure(result)}

