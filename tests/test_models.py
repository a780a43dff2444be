"""The payload models: every rule of the PlayCamp and PlayFab contracts, accepted and refused."""

import json
import random
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Dict

import attrs
import pytest

from playhooks import PayloadError, PlayhooksError
from playhooks._models import (
    MAX_BULK_SESSIONS,
    MAX_JSON_OBJECT_BYTES,
    BulkItemResult,
    BulkPlaytimeRequest,
    BulkPlaytimeResult,
    CharacterEvent,
    CharacterEventResult,
    PlayCampError,
    PlayCampErrorDetail,
    PlayFabError,
    PlaytimeSession,
    PlaytimeSessionResult,
)

UTC = timezone.utc
PLUS_TWO = timezone(timedelta(hours=2))
START = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
END = START + timedelta(seconds=90)

VALID: Dict[type, Dict[str, Any]] = {
    PlaytimeSession: {
        "session_id": "session-1",
        "user_id": "player-1",
        "duration_seconds": 90,
        "started_at": START,
        "ended_at": END,
    },
    PlaytimeSessionResult: {
        "session_id": "session-1",
        "user_id": "player-1",
        "duration_seconds": 90,
        "recorded": True,
        "created_at": END,
    },
    BulkItemResult: {"session_id": "session-1", "status": "SUCCESS"},
    BulkPlaytimeResult: {"total_requested": 1, "successful": 1, "failed": 0, "skipped": 0, "results": ()},
    CharacterEvent: {"character_id": "C0FFEE", "event_name": "level_completed", "playfab_id": "A1B2C3"},
    CharacterEventResult: {"event_id": "EV-1"},
}


def build(cls: type, **changes: Any) -> Any:
    """A valid model of ``cls`` with ``changes`` applied."""
    return cls(**{**VALID[cls], **changes})


def bulk(**changes: Any) -> BulkPlaytimeRequest:
    """A valid one-session bulk request with ``changes`` applied."""
    return BulkPlaytimeRequest(**{"sessions": [build(PlaytimeSession)], **changes})


def assert_payload_error(field: str, words: str, make: Callable[[], Any]) -> None:
    """``make()`` raises a PayloadError, also a ValueError, naming ``field`` and saying ``words``."""
    with pytest.raises(PayloadError) as caught:
        make()
    assert isinstance(caught.value, ValueError)
    assert field == caught.value.field
    assert words in str(caught.value)


def json_of_size(size: int, fill: str = "x") -> Dict[str, str]:
    """``{"k": "xxx..."}`` whose compact UTF-8 JSON is exactly ``size`` bytes."""
    overhead = len('{"k":""}')
    per_char = len(fill.encode("utf-8"))
    assert (size - overhead) % per_char == 0
    return {"k": fill * ((size - overhead) // per_char)}


def model_fields(*pairs: Any) -> Any:
    """Parametrize ``cls, field`` pairs, each shown as ``Model.field``."""
    return [pytest.param(cls, field, id=f"{cls.__name__}.{field}") for cls, field in pairs]


class TestPayloadError:
    def test_is_a_value_error_under_the_playhooks_root(self):
        """PayloadError can be caught as a ValueError or as a PlayhooksError."""
        error = PayloadError("creator_key", "must be 5 uppercase letters or digits", "ab")

        assert isinstance(error, ValueError)
        assert isinstance(error, PlayhooksError)

    def test_message_names_field_rule_and_value(self):
        """The message reads ``field: rule (got value)``."""
        error = PayloadError("platform", "must be one of iOS", "PC")

        assert "platform: must be one of iOS (got 'PC')" == str(error)
        assert "platform" == error.field
        assert "must be one of iOS" == error.rule


REQUIRED_TEXT = model_fields(
    (PlaytimeSession, "session_id"),
    (PlaytimeSession, "user_id"),
    (PlaytimeSessionResult, "session_id"),
    (PlaytimeSessionResult, "user_id"),
    (BulkItemResult, "session_id"),
    (CharacterEvent, "character_id"),
    (CharacterEvent, "playfab_id"),
    (CharacterEventResult, "event_id"),
)
OPTIONAL_TEXT = model_fields(
    (PlaytimeSession, "campaign_id"),
    (PlaytimeSession, "callback_id"),
    (BulkItemResult, "error"),
)
NOT_TEXT = [
    pytest.param("", id="empty"),
    pytest.param(7, id="int"),
    pytest.param(b"player-1", id="bytes"),
    pytest.param(["player-1"], id="list"),
]


class TestRequiredText:
    @pytest.mark.parametrize("cls, field", REQUIRED_TEXT)
    def test_accepts_a_non_empty_string(self, cls, field):
        """A required string field keeps any non-empty string."""
        model = build(cls, **{field: "x"})

        assert "x" == getattr(model, field)

    @pytest.mark.parametrize("cls, field", REQUIRED_TEXT)
    @pytest.mark.parametrize("value", [*NOT_TEXT, pytest.param(None, id="none")])
    def test_rejects_anything_else(self, cls, field, value):
        """A required string field refuses an empty string, None and non-strings."""
        assert_payload_error(field, "must be a non-empty string", lambda: build(cls, **{field: value}))


class TestOptionalText:
    @pytest.mark.parametrize("cls, field", OPTIONAL_TEXT)
    def test_defaults_to_none(self, cls, field):
        """An optional string field is None when not given."""
        assert None is getattr(build(cls), field)

    @pytest.mark.parametrize("cls, field", OPTIONAL_TEXT)
    def test_accepts_a_non_empty_string(self, cls, field):
        """An optional string field keeps a non-empty string."""
        assert "x" == getattr(build(cls, **{field: "x"}), field)

    @pytest.mark.parametrize("cls, field", OPTIONAL_TEXT)
    @pytest.mark.parametrize("value", NOT_TEXT)
    def test_rejects_empty_and_non_strings(self, cls, field, value):
        """An optional string field, when given, must be a non-empty string."""
        assert_payload_error(field, "must be a non-empty string when given", lambda: build(cls, **{field: value}))

    def test_bulk_callback_id_follows_the_same_rule(self):
        """The bulk request's callback_id refuses an empty string too."""
        assert "cb" == bulk(callback_id="cb").callback_id
        assert_payload_error("callback_id", "must be a non-empty string when given", lambda: bulk(callback_id=""))


class TestDurationSeconds:
    @pytest.mark.parametrize("cls", [PlaytimeSession, PlaytimeSessionResult], ids=lambda cls: cls.__name__)
    @pytest.mark.parametrize("value", [1, 2, 86_400])
    def test_accepts_integers_from_one(self, cls, value):
        """durationSeconds is any integer >= 1."""
        assert value == build(cls, duration_seconds=value).duration_seconds

    @pytest.mark.parametrize("cls", [PlaytimeSession, PlaytimeSessionResult], ids=lambda cls: cls.__name__)
    @pytest.mark.parametrize("value", [pytest.param(0, id="zero"), pytest.param(-1, id="negative")])
    def test_rejects_integers_below_one(self, cls, value):
        """durationSeconds below 1 breaks the ``>= 1`` rule."""
        assert_payload_error("duration_seconds", "must be >= 1", lambda: build(cls, duration_seconds=value))

    @pytest.mark.parametrize("cls", [PlaytimeSession, PlaytimeSessionResult], ids=lambda cls: cls.__name__)
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(1.5, id="float"),
            pytest.param(2.0, id="integral-float"),
            pytest.param(True, id="bool"),
            pytest.param("7", id="numeric-string"),
            pytest.param(None, id="none"),
        ],
    )
    def test_rejects_non_integers(self, cls, value):
        """durationSeconds must be an int: floats, bools and numeric strings are refused."""
        assert_payload_error("duration_seconds", "must be an integer", lambda: build(cls, duration_seconds=value))


TIMESTAMP_FIELDS = model_fields(
    (PlaytimeSession, "started_at"),
    (PlaytimeSession, "ended_at"),
    (PlaytimeSessionResult, "created_at"),
    (CharacterEvent, "timestamp"),
)


class TestTimestamps:
    @pytest.mark.parametrize("cls, field", TIMESTAMP_FIELDS)
    def test_rejects_a_naive_datetime(self, cls, field):
        """A naive datetime is ambiguous, so every timestamp field refuses it."""
        naive = START.replace(tzinfo=None)

        assert_payload_error(field, "must be timezone-aware", lambda: build(cls, **{field: naive}))

    @pytest.mark.parametrize("cls, field", TIMESTAMP_FIELDS)
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("2024-01-15T10:30:00.000Z", id="string"),
            pytest.param(1705314600, id="epoch-seconds"),
            pytest.param(date(2024, 1, 15), id="date"),
        ],
    )
    def test_rejects_a_non_datetime(self, cls, field, value):
        """A timestamp field takes a datetime, not its text or a number."""
        assert_payload_error(field, "must be a datetime", lambda: build(cls, **{field: value}))

    @pytest.mark.parametrize("cls, field", TIMESTAMP_FIELDS)
    def test_converts_an_aware_datetime_to_utc(self, cls, field):
        """An aware datetime in another zone is kept as the same instant in UTC."""
        stored = getattr(build(cls, **{field: START.astimezone(PLUS_TWO)}), field)

        assert START == stored
        assert UTC is stored.tzinfo
        assert 10 == stored.hour

    def test_event_timestamp_is_optional(self):
        """A CharacterEvent without a timestamp keeps None: PlayFab uses the current time."""
        assert None is build(CharacterEvent).timestamp


class TestSessionOrder:
    def test_accepts_an_end_equal_to_the_start(self):
        """endedAt >= startedAt holds when both are the same instant."""
        session = build(PlaytimeSession, started_at=START, ended_at=START, duration_seconds=1)

        assert session.started_at == session.ended_at

    def test_rejects_an_end_before_the_start(self):
        """endedAt one millisecond before startedAt breaks the order rule."""
        earlier = START - timedelta(milliseconds=1)

        assert_payload_error(
            "ended_at", "must not precede the start", lambda: build(PlaytimeSession, started_at=START, ended_at=earlier)
        )

    def test_compares_instants_not_wall_clocks(self):
        """An end whose -05:00 wall clock reads earlier but is later in UTC is accepted."""
        end = datetime(2024, 1, 15, 5, 31, tzinfo=timezone(timedelta(hours=-5)))

        assert START + timedelta(minutes=1) == build(PlaytimeSession, ended_at=end).ended_at

    def test_rejects_an_end_before_the_start_in_another_zone(self):
        """An end whose wall clock reads later but is earlier in UTC is refused."""
        end = datetime(2024, 1, 15, 11, 29, tzinfo=PLUS_TWO)

        assert_payload_error("ended_at", "must not precede the start", lambda: build(PlaytimeSession, ended_at=end))


class TestCreatorKey:
    @pytest.mark.parametrize("value", ["AB12C", "00000", "ZZZZZ", None])
    def test_accepts_five_uppercase_alphanumerics_or_none(self, value):
        """creatorKey matches ``^[A-Z0-9]{5}$``, or is left out."""
        assert value == build(PlaytimeSession, creator_key=value).creator_key

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("ab12c", id="lowercase"),
            pytest.param("AB12", id="four-chars"),
            pytest.param("AB12CD", id="six-chars"),
            pytest.param("AB-2C", id="dash"),
            pytest.param("AB 2C", id="space"),
            pytest.param("AB_2C", id="underscore"),
            pytest.param("ÀB12C", id="non-ascii-letter"),
            pytest.param("AB12C\n", id="trailing-newline"),
            pytest.param("", id="empty"),
            pytest.param(12345, id="int"),
        ],
    )
    def test_rejects_anything_else(self, value):
        """creatorKey refuses lowercase, wrong lengths, symbols and non-strings."""
        assert_payload_error("creator_key", "^[A-Z0-9]{5}$", lambda: build(PlaytimeSession, creator_key=value))


class TestPlatform:
    @pytest.mark.parametrize("value", ["iOS", "Android", "Web", "Roblox", "Other"])
    def test_accepts_each_documented_platform(self, value):
        """platform takes each of the five documented values, spelled as documented."""
        assert value == build(PlaytimeSession, platform=value).platform

    def test_defaults_to_none_so_the_server_picks(self):
        """Left out, platform is None: the server defaults it to Other."""
        assert None is build(PlaytimeSession).platform

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("ios", id="wrong-case"),
            pytest.param("PC", id="unknown"),
            pytest.param("other", id="lowercase-other"),
            pytest.param("", id="empty"),
            pytest.param(1, id="int"),
        ],
    )
    def test_rejects_anything_else(self, value):
        """platform refuses values outside the enum, case included."""
        assert_payload_error(
            "platform",
            "must be one of iOS, Android, Web, Roblox, Other",
            lambda: build(PlaytimeSession, platform=value),
        )


JSON_OBJECT_FIELDS = model_fields((PlaytimeSession, "metadata"), (CharacterEvent, "body"))


class _Opaque:
    """An object JSON cannot encode."""


class _RollbackDict(dict):
    """Stands in for the dict subclass Ren'Py hands to ``.rpy`` code."""


class TestJsonObjects:
    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    def test_defaults_to_none(self, cls, field):
        """metadata and body are optional."""
        assert None is getattr(build(cls), field)

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param({}, id="empty"),
            pytest.param(
                {"level": 3, "score": 1.5, "won": True, "tag": None, "items": ["a", 1], "zone": {"name": "Forêt"}},
                id="every-json-type",
            ),
        ],
    )
    def test_accepts_json_objects(self, cls, field, value):
        """Any object of string keys and JSON values is kept as given."""
        assert value == getattr(build(cls, **{field: value}), field)

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param({1: "a"}, id="int-key"),
            pytest.param({None: "a"}, id="none-key"),
            pytest.param({("a",): "b"}, id="tuple-key"),
            pytest.param({"ok": 1, 2: "b"}, id="one-bad-key"),
        ],
    )
    def test_rejects_non_string_keys(self, cls, field, value):
        """Object keys must be strings: JSON has no other kind."""
        assert_payload_error(field, "keys must be strings", lambda: build(cls, **{field: value}))

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    def test_rejects_non_string_keys_in_nested_objects(self, cls, field):
        """A nested object with a non-string key is not JSON either."""
        assert_payload_error(field, "keys must be strings", lambda: build(cls, **{field: {"zone": {1: "a"}}}))

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param({"x": float("nan")}, id="nan"),
            pytest.param({"x": float("inf")}, id="infinity"),
            pytest.param({"x": [float("-inf")]}, id="nested-minus-infinity"),
            pytest.param({"x": {1, 2}}, id="set"),
            pytest.param({"x": _Opaque()}, id="object"),
            pytest.param({"x": b"bytes"}, id="bytes"),
            pytest.param({"x": START}, id="datetime"),
        ],
    )
    def test_rejects_non_json_values(self, cls, field, value):
        """NaN, infinities and Python objects JSON cannot hold are refused."""
        assert_payload_error(field, "must hold only JSON values", lambda: build(cls, **{field: value}))

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    def test_rejects_a_circular_object(self, cls, field):
        """An object that contains itself cannot be encoded."""
        value: Dict[str, Any] = {}
        value["self"] = value

        assert_payload_error(field, "must hold only JSON values", lambda: build(cls, **{field: value}))

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    @pytest.mark.parametrize(
        "value",
        [pytest.param([("a", 1)], id="list"), pytest.param("text", id="string"), pytest.param(5, id="int")],
    )
    def test_rejects_non_mappings(self, cls, field, value):
        """metadata and body must be objects, not arrays or scalars."""
        assert_payload_error(
            field, "must be a mapping of string keys to JSON values", lambda: build(cls, **{field: value})
        )

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    @pytest.mark.parametrize("fill", [pytest.param("x", id="ascii"), pytest.param("é", id="two-byte-utf8")])
    def test_accepts_exactly_the_size_bound(self, cls, field, fill):
        """An object whose compact UTF-8 JSON is exactly MAX_JSON_OBJECT_BYTES is accepted."""
        value = json_of_size(MAX_JSON_OBJECT_BYTES, fill)

        assert value == getattr(build(cls, **{field: value}), field)

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    @pytest.mark.parametrize("fill", [pytest.param("x", id="ascii"), pytest.param("é", id="two-byte-utf8")])
    def test_rejects_one_step_over_the_size_bound(self, cls, field, fill):
        """One more character (one or two bytes) past the bound is refused."""
        value = json_of_size(MAX_JSON_OBJECT_BYTES, fill)
        value["k"] += fill

        assert_payload_error(
            field, f"must encode to at most {MAX_JSON_OBJECT_BYTES} bytes", lambda: build(cls, **{field: value})
        )

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    def test_escapes_count_toward_the_size_bound(self, cls, field):
        """A control character takes six bytes (``\\u0001``): an object of them is sized as encoded."""
        value = {"k": "\x01" * 1705 + "xx"}  # 8 + 6 * 1705 + 2 bytes: exactly the bound
        assert MAX_JSON_OBJECT_BYTES == len(json.dumps(value, separators=(",", ":")).encode("utf-8"))

        assert value == getattr(build(cls, **{field: value}), field)
        value["k"] += "x"
        assert_payload_error(field, "must encode to at most", lambda: build(cls, **{field: value}))

    @pytest.mark.parametrize("seed", range(4))
    def test_the_size_rule_agrees_with_the_encoded_size(self, seed):
        """Objects of every JSON kind, around the bound: accepted exactly when their compact UTF-8
        JSON fits (the copy bounds the size, and must never take that bound for the size)."""
        chance = random.Random(seed)
        characters = ["a", "é", "€", "😀", "\x01", '"', "\\", "\n", "\u2028"]

        def value(depth):
            kind = chance.randrange(8 if depth < 4 else 5)
            if kind == 0:
                return "".join(chance.choice(characters) for _ in range(chance.randrange(40)))
            if kind == 1:
                return chance.choice([0, -(2**63), 2**63 - 1, chance.randrange(-(10**6), 10**6)])
            if kind == 2:
                return chance.choice([-2.2250738585072014e-308, 1.7976931348623157e308, 0.1, -1e-7, 1e16])
            if kind == 3:
                return chance.choice([True, False])
            if kind == 4:
                return None
            if kind == 5:
                return [value(depth + 1) for _ in range(chance.randrange(6))]
            return {f"k{index}{chance.choice(characters)}": value(depth + 1) for index in range(chance.randrange(6))}

        verdicts = []
        for _ in range(60):
            candidate = {f"key{index}": value(0) for index in range(chance.randrange(20, 200))}
            size = len(json.dumps(candidate, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
            try:
                build(CharacterEvent, body=candidate)
                verdicts.append((size, size <= MAX_JSON_OBJECT_BYTES, True))
            except PayloadError as error:
                assert "must encode to at most" in str(error)
                verdicts.append((size, size <= MAX_JSON_OBJECT_BYTES, False))

        assert [(size, fits, fits) for size, fits, _ in verdicts] == verdicts
        assert {True, False} == {fits for _, fits, _ in verdicts}  # both sides of the bound were tried

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    def test_stores_a_dict_subclass_as_a_plain_dict_copy(self, cls, field):
        """A dict subclass (as Ren'Py's rollback-aware dicts are) is copied into a plain dict."""
        given = _RollbackDict(level=3)

        stored = getattr(build(cls, **{field: given}), field)
        given["level"] = 4

        assert dict is type(stored)
        assert {"level": 3} == stored

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    def test_stores_a_non_dict_mapping_as_a_plain_dict_copy(self, cls, field):
        """A read-only Mapping is copied into a plain dict, unaffected by later changes behind it."""
        source = {"level": 3}

        stored = getattr(build(cls, **{field: MappingProxyType(source)}), field)
        source["level"] = 4

        assert dict is type(stored)
        assert {"level": 3} == stored

    @pytest.mark.parametrize("cls, field", JSON_OBJECT_FIELDS)
    def test_copies_nested_values_deeply(self, cls, field):
        """Nested lists and mappings are copied too, as plain lists and dicts."""
        inner = [1, 2]
        source = {"list": inner, "nested": MappingProxyType({"pair": (1, 2)})}

        stored = getattr(build(cls, **{field: source}), field)
        inner.append(float("nan"))

        assert {"list": [1, 2], "nested": {"pair": [1, 2]}} == stored


class TestIsTest:
    @pytest.mark.parametrize("make", [lambda **kw: build(PlaytimeSession, **kw), bulk], ids=["session", "bulk"])
    @pytest.mark.parametrize("value", [True, False, None])
    def test_accepts_a_bool_or_none(self, make, value):
        """isTest is true, false, or left out."""
        assert value is make(is_test=value).is_test

    @pytest.mark.parametrize("make", [lambda **kw: build(PlaytimeSession, **kw), bulk], ids=["session", "bulk"])
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(1, id="one"),
            pytest.param(0, id="zero"),
            pytest.param("true", id="string-true"),
            pytest.param("false", id="string-false"),
        ],
    )
    def test_rejects_truthy_stand_ins(self, make, value):
        """isTest must be a real bool, not 1, 0 or a string."""
        assert_payload_error("is_test", "must be true or false", lambda: make(is_test=value))


class TestBulkPlaytimeRequest:
    @pytest.mark.parametrize("count", [1, MAX_BULK_SESSIONS])
    def test_accepts_one_to_a_thousand_sessions(self, count):
        """A bulk request holds between 1 and 1000 sessions."""
        sessions = [build(PlaytimeSession, session_id=f"s-{index}") for index in range(count)]

        assert count == len(BulkPlaytimeRequest(sessions=sessions).sessions)

    @pytest.mark.parametrize("count", [0, MAX_BULK_SESSIONS + 1])
    def test_rejects_zero_or_more_than_a_thousand(self, count):
        """An empty request, or one over 1000 sessions, is refused."""
        sessions = [build(PlaytimeSession, session_id=f"s-{index}") for index in range(count)]

        assert_payload_error(
            "sessions", f"must hold 1 to 1000 sessions, not {count}", lambda: BulkPlaytimeRequest(sessions=sessions)
        )

    def test_stores_sessions_as_a_tuple(self):
        """A list of sessions is kept as a tuple."""
        session = build(PlaytimeSession)

        request = BulkPlaytimeRequest(sessions=[session])

        assert (session,) == request.sessions

    def test_rejects_items_that_are_not_sessions(self):
        """A bulk request holds PlaytimeSession models, not their JSON."""
        assert_payload_error(
            "sessions",
            "must hold PlaytimeSession items",
            lambda: BulkPlaytimeRequest(sessions=[build(PlaytimeSession), {"sessionId": "s-2"}]),
        )

    @pytest.mark.parametrize("value", [None, 5, "abc", {"a": 1}], ids=["none", "int", "str", "dict"])
    def test_rejects_a_non_list(self, value):
        """sessions that are not a list or tuple are a PayloadError like every other rule."""
        assert_payload_error("sessions", "sessions: must", lambda: BulkPlaytimeRequest(sessions=value))


class TestBulkItemResult:
    @pytest.mark.parametrize("status", ["SUCCESS", "SKIPPED", "FAILED"])
    def test_accepts_each_status(self, status):
        """status is one of SUCCESS, SKIPPED, FAILED."""
        assert status == build(BulkItemResult, status=status).status

    @pytest.mark.parametrize(
        "status",
        [
            pytest.param("success", id="lowercase"),
            pytest.param("OK", id="unknown"),
            pytest.param("", id="empty"),
            pytest.param(None, id="none"),
        ],
    )
    def test_rejects_anything_else(self, status):
        """status refuses values outside the enum."""
        assert_payload_error(
            "status", "must be one of SUCCESS, SKIPPED, FAILED", lambda: build(BulkItemResult, status=status)
        )


class TestBulkPlaytimeResult:
    COUNTS = ["total_requested", "successful", "failed", "skipped"]

    @pytest.mark.parametrize("field", COUNTS)
    def test_accepts_zero_counts(self, field):
        """Each count is an integer >= 0."""
        assert 0 == getattr(build(BulkPlaytimeResult, **{field: 0}), field)

    @pytest.mark.parametrize("field", COUNTS)
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(-1, id="negative"),
            pytest.param(True, id="bool"),
            pytest.param(1.0, id="float"),
            pytest.param("1", id="string"),
        ],
    )
    def test_rejects_negative_and_non_integer_counts(self, field, value):
        """A count that is negative or not an int is refused."""
        assert_payload_error(field, "must be an integer >= 0", lambda: build(BulkPlaytimeResult, **{field: value}))

    def test_stores_results_as_a_tuple(self):
        """The per-session results are kept as a tuple."""
        item = build(BulkItemResult)

        assert (item,) == build(BulkPlaytimeResult, results=[item]).results


class TestPlaytimeSessionResult:
    @pytest.mark.parametrize("value", [True, False])
    def test_accepts_a_bool_recorded(self, value):
        """recorded is false for a duplicate sessionId, true otherwise."""
        assert value is build(PlaytimeSessionResult, recorded=value).recorded

    @pytest.mark.parametrize("value", [1, "true", None], ids=["int", "string", "none"])
    def test_rejects_a_non_bool_recorded(self, value):
        """recorded must be a real bool."""
        assert_payload_error("recorded", "must be true or false", lambda: build(PlaytimeSessionResult, recorded=value))


class TestEventName:
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("player_logged_in", id="convention"),
            pytest.param("a", id="one-char"),
            pytest.param("LevelUp2", id="mixed-case-digits"),
            pytest.param("_", id="underscore"),
            pytest.param("e" * 64, id="64-chars"),
        ],
    )
    def test_accepts_names_of_the_pattern(self, value):
        """EventName matches ``^[A-Za-z0-9_]{1,64}$``."""
        assert value == build(CharacterEvent, event_name=value).event_name

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("e" * 65, id="65-chars"),
            pytest.param("", id="empty"),
            pytest.param("level completed", id="space"),
            pytest.param("level-completed", id="dash"),
            pytest.param("niveau_terminé", id="non-ascii-letter"),
            pytest.param("ｌｅｖｅｌ", id="fullwidth"),
            pytest.param("level٣", id="non-ascii-digit"),
            pytest.param("level\n", id="trailing-newline"),
            pytest.param(None, id="none"),
            pytest.param(7, id="int"),
        ],
    )
    def test_rejects_anything_else(self, value):
        """EventName refuses spaces, dashes, non-ASCII, the empty string and over 64 characters."""
        assert_payload_error("event_name", "^[A-Za-z0-9_]{1,64}$", lambda: build(CharacterEvent, event_name=value))


class TestCustomTags:
    @pytest.mark.parametrize("value", [None, {}, {"build": "1.2", "region": "eu"}], ids=["none", "empty", "tags"])
    def test_accepts_string_to_string_maps(self, value):
        """CustomTags maps strings to strings, or is left out."""
        assert value == build(CharacterEvent, custom_tags=value).custom_tags

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param({"build": 12}, id="int-value"),
            pytest.param({"build": None}, id="none-value"),
            pytest.param({"build": ["1"]}, id="list-value"),
            pytest.param({1: "build"}, id="int-key"),
        ],
    )
    def test_rejects_non_string_keys_or_values(self, value):
        """Every key and every value of CustomTags must be a string."""
        assert_payload_error(
            "custom_tags", "must map strings to strings", lambda: build(CharacterEvent, custom_tags=value)
        )

    @pytest.mark.parametrize("value", [[("build", "1.2")], "build=1.2"], ids=["pairs", "string"])
    def test_rejects_non_mappings(self, value):
        """CustomTags must be an object."""
        assert_payload_error(
            "custom_tags", "must be a mapping of strings to strings", lambda: build(CharacterEvent, custom_tags=value)
        )

    def test_stores_a_mapping_as_a_plain_dict_copy(self):
        """A read-only Mapping of tags is kept as a plain dict."""
        stored = build(CharacterEvent, custom_tags=MappingProxyType({"build": "1.2"})).custom_tags

        assert dict is type(stored)
        assert {"build": "1.2"} == stored


class TestErrorModels:
    def test_playfab_error_keeps_every_field(self):
        """PlayFabError holds the ApiErrorWrapper, with optional details and retry delay."""
        error = PlayFabError(
            code=400,
            status="BadRequest",
            error="CharacterNotFound",
            error_code=1135,
            error_message="Character not found",
        )

        assert (None, None) == (error.error_details, error.retry_after_seconds)
        assert 1135 == error.error_code

    def test_playcamp_error_stores_details_as_a_tuple(self):
        """PlayCampError keeps its details as a tuple, empty by default."""
        detail = PlayCampErrorDetail(message="Required", path="userId")

        assert () == PlayCampError(code="VALIDATION_ERROR", error="Validation Error").details
        assert (detail,) == PlayCampError(code="VALIDATION_ERROR", error="Validation Error", details=[detail]).details


FROZEN_MODELS = [
    build(PlaytimeSession),
    build(PlaytimeSessionResult),
    bulk(),
    build(BulkItemResult),
    build(BulkPlaytimeResult),
    build(CharacterEvent),
    build(CharacterEventResult),
    PlayFabError(
        code=429,
        status="TooManyRequests",
        error="APIClientRequestRateLimitExceeded",
        error_code=1199,
        error_message="...",
    ),
    PlayCampError(code="VALIDATION_ERROR", error="Validation Error"),
    PlayCampErrorDetail(message="Required"),
]


class TestFrozen:
    @pytest.mark.parametrize("model", FROZEN_MODELS, ids=lambda model: type(model).__name__)
    def test_assigning_a_field_raises(self, model):
        """Every model is immutable once built."""
        field = attrs.fields(type(model))[0].name

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(model, field, "changed")
