"""The wire format: golden JSON for both services, the one timestamp format, strict structuring."""

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Dict

import attrs
import pytest

from playhooks import PayloadError, _wire
from playhooks._models import (
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
from playhooks._wire import (
    encode,
    format_timestamp,
    parse_timestamp,
    playcamp_envelope,
    playfab_envelope,
    structure,
    unstructure,
    wire_name,
)

UTC = timezone.utc
START = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
END = datetime(2024, 1, 15, 10, 31, 30, 250000, tzinfo=UTC)

FULL_SESSION = PlaytimeSession(
    session_id="session-1",
    user_id="player-1",
    duration_seconds=90,
    started_at=START,
    ended_at=END,
    campaign_id="campaign-7",
    creator_key="AB12C",
    platform="Web",
    metadata={"level": 3, "zone": "Forêt"},
    callback_id="callback-9",
    is_test=False,
)
FULL_SESSION_JSON = {
    "sessionId": "session-1",
    "userId": "player-1",
    "durationSeconds": 90,
    "startedAt": "2024-01-15T10:30:00.000Z",
    "endedAt": "2024-01-15T10:31:30.250Z",
    "campaignId": "campaign-7",
    "creatorKey": "AB12C",
    "platform": "Web",
    "metadata": {"level": 3, "zone": "Forêt"},
    "callbackId": "callback-9",
    "isTest": False,
}
MINIMAL_SESSION = PlaytimeSession(
    session_id="session-1", user_id="player-1", duration_seconds=90, started_at=START, ended_at=END
)

FULL_EVENT = CharacterEvent(
    character_id="C0FFEE",
    event_name="level_completed",
    playfab_id="A1B2C3",
    body={"level": 3, "playhooks_event_id": "e-1"},
    timestamp=START,
    custom_tags={"build": "1.2"},
)
FULL_EVENT_JSON = {
    "CharacterId": "C0FFEE",
    "EventName": "level_completed",
    "PlayFabId": "A1B2C3",
    "Body": {"level": 3, "playhooks_event_id": "e-1"},
    "Timestamp": "2024-01-15T10:30:00.000Z",
    "CustomTags": {"build": "1.2"},
}

# The example body of spec/playcamp-playtime-sessions.md, verbatim.
SPEC_EXAMPLE_BODY = {
    "sessionId": "<string>",
    "userId": "<string>",
    "durationSeconds": 2,
    "startedAt": "2023-11-07T05:31:56.000Z",
    "endedAt": "2023-11-07T05:31:58.000Z",
    "campaignId": "<string>",
    "creatorKey": "AB12C",
    "platform": "Other",
    "metadata": {},
    "callbackId": "<string>",
    "isTest": False,
}

# The throttling body of spec/apis-notes.md, verbatim.
PLAYFAB_429_BODY = {
    "code": 429,
    "status": "TooManyRequests",
    "retryAfterSeconds": 8,
    "error": "APIClientRequestRateLimitExceeded",
    "errorCode": 1199,
    "errorMessage": "...",
}

VALID_SESSION_JSON: Dict[str, Any] = {
    "sessionId": "session-1",
    "userId": "player-1",
    "durationSeconds": 90,
    "startedAt": "2024-01-15T10:30:00.000Z",
    "endedAt": "2024-01-15T10:31:30.000Z",
}


def assert_wire_error(field: str, words: str, data: Any, cls: type) -> None:
    """``structure(data, cls)`` raises a PayloadError naming the JSON path ``field`` and saying ``words``."""
    with pytest.raises(PayloadError) as caught:
        structure(data, cls)
    assert isinstance(caught.value, ValueError)
    assert field == caught.value.field
    assert words in str(caught.value)


def session_json(**changes: Any) -> Dict[str, Any]:
    """A valid PlaytimeSession body with ``changes`` applied (a None value removes the key)."""
    data = {**VALID_SESSION_JSON, **changes}
    return {key: value for key, value in data.items() if value is not None}


class TestPlayCampRequestJson:
    def test_full_session_unstructures_to_every_camel_case_key(self):
        """A fully populated session gives each of the eleven documented keys."""
        assert FULL_SESSION_JSON == unstructure(FULL_SESSION)

    def test_full_session_encodes_to_compact_utf8(self):
        """The bytes on the wire are compact JSON, in field order, with UTF-8 left unescaped."""
        expected = (
            b'{"sessionId":"session-1","userId":"player-1","durationSeconds":90,'
            b'"startedAt":"2024-01-15T10:30:00.000Z","endedAt":"2024-01-15T10:31:30.250Z",'
            b'"campaignId":"campaign-7","creatorKey":"AB12C","platform":"Web",'
            b'"metadata":{"level":3,"zone":"For\xc3\xaat"},"callbackId":"callback-9","isTest":false}'
        )

        assert expected == encode(unstructure(FULL_SESSION))

    def test_minimal_session_gives_only_required_keys(self):
        """Unset optional fields are left out, so the server applies its own defaults."""
        expected = {
            "sessionId": "session-1",
            "userId": "player-1",
            "durationSeconds": 90,
            "startedAt": "2024-01-15T10:30:00.000Z",
            "endedAt": "2024-01-15T10:31:30.250Z",
        }

        assert expected == unstructure(MINIMAL_SESSION)

    def test_an_explicit_false_is_sent(self):
        """isTest=False is a choice the caller made, so it stays in the JSON."""
        session = PlaytimeSession(
            session_id="s", user_id="u", duration_seconds=1, started_at=START, ended_at=START, is_test=False
        )

        assert False is unstructure(session)["isTest"]

    def test_spec_example_encodes_back_to_itself(self):
        """The spec's example body structures and unstructures to the same JSON."""
        assert SPEC_EXAMPLE_BODY == unstructure(structure(SPEC_EXAMPLE_BODY, PlaytimeSession))

    def test_bulk_request_nests_session_json(self):
        """A bulk request is ``{"sessions": [...], "callbackId"?, "isTest"?}``."""
        request = BulkPlaytimeRequest(sessions=[MINIMAL_SESSION], callback_id="cb", is_test=True)

        expected = {"sessions": [unstructure(MINIMAL_SESSION)], "callbackId": "cb", "isTest": True}

        assert expected == unstructure(request)


class TestPlayFabRequestJson:
    def test_full_event_unstructures_to_every_pascal_case_key(self):
        """A fully populated event gives the six PascalCase keys, PlayFabId spelled as PlayFab does."""
        assert FULL_EVENT_JSON == unstructure(FULL_EVENT)

    def test_full_event_encodes_to_compact_utf8(self):
        """The event's bytes on the wire are compact JSON in field order."""
        expected = (
            b'{"CharacterId":"C0FFEE","EventName":"level_completed","PlayFabId":"A1B2C3",'
            b'"Body":{"level":3,"playhooks_event_id":"e-1"},"Timestamp":"2024-01-15T10:30:00.000Z",'
            b'"CustomTags":{"build":"1.2"}}'
        )

        assert expected == encode(unstructure(FULL_EVENT))

    def test_minimal_event_gives_only_required_keys(self):
        """Body, Timestamp and CustomTags are left out when unset."""
        event = CharacterEvent(character_id="C0FFEE", event_name="level_completed", playfab_id="A1B2C3")

        assert {"CharacterId": "C0FFEE", "EventName": "level_completed", "PlayFabId": "A1B2C3"} == unstructure(event)

    @pytest.mark.parametrize(
        "cls, field, expected",
        [
            pytest.param(CharacterEvent, "playfab_id", "PlayFabId", id="PlayFabId"),
            pytest.param(CharacterEvent, "custom_tags", "CustomTags", id="CustomTags"),
            pytest.param(CharacterEventResult, "event_id", "EventId", id="EventId"),
            pytest.param(PlayFabError, "retry_after_seconds", "retryAfterSeconds", id="retryAfterSeconds"),
            pytest.param(PlaytimeSession, "is_test", "isTest", id="isTest"),
        ],
    )
    def test_wire_name_maps_python_names(self, cls, field, expected):
        """wire_name gives the JSON key each service uses for a field."""
        assert expected == wire_name(cls, field)


NESTED = {"zone": {"name": "Forêt", "tags": ["a", {"b": [1, 2.5, None]}]}, "won": False}
HAND_WRITTEN = [
    pytest.param(FULL_SESSION, id="full-session"),
    pytest.param(MINIMAL_SESSION, id="minimal-session"),
    pytest.param(
        PlaytimeSession(
            session_id="s", user_id="u", duration_seconds=1, started_at=START, ended_at=END, metadata={}, is_test=False
        ),
        id="session-empty-metadata-and-false",
    ),
    pytest.param(attrs.evolve(MINIMAL_SESSION, metadata=NESTED), id="session-nested-metadata"),
    pytest.param(FULL_EVENT, id="full-event"),
    pytest.param(CharacterEvent(character_id="C", event_name="e", playfab_id="P"), id="minimal-event"),
    pytest.param(CharacterEvent(character_id="C", event_name="e", playfab_id="P", body={}, custom_tags={}), id="event-empty"),
    pytest.param(
        CharacterEvent(character_id="C", event_name="e", playfab_id="P", body=NESTED, timestamp=END), id="event-nested-body"
    ),
]


class TestHandWrittenRequestJson:
    """The worker writes its two requests by hand: no cattrs in the client, and an event in half the time."""

    @pytest.mark.parametrize("model", HAND_WRITTEN)
    def test_gives_what_the_converter_gives(self, model):
        """Key for key, in the same order, what the service's cattrs converter makes of the model."""
        generated = _wire._formats().converter_for(type(model)).unstructure(model)

        assert list(generated.items()) == list(unstructure(model).items())

    @pytest.mark.parametrize("model", HAND_WRITTEN)
    def test_shares_no_container_with_the_model(self, model):
        """Changing the JSON, nested lists included, leaves the model as it was."""
        before = json.dumps(unstructure(model))
        data = unstructure(model)
        for key in ("Body", "CustomTags", "metadata"):
            if key in data:
                data[key]["added"] = 1
                for item in data[key].values():
                    if isinstance(item, dict):
                        item["added"] = 1

        assert before == json.dumps(unstructure(model))


class TestEncode:
    def test_is_compact_utf8(self):
        """No spaces after separators, and non-ASCII text as raw UTF-8."""
        assert '{"a":[1,2],"b":"é"}'.encode("utf-8") == encode({"a": [1, 2], "b": "é"})

    @pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "infinity"])
    def test_refuses_nan_and_infinity(self, value):
        """NaN and Infinity are not JSON, so they are never sent."""
        with pytest.raises(ValueError):
            encode({"x": value})


class TestFormatTimestamp:
    @pytest.mark.parametrize(
        "moment, expected",
        [
            pytest.param(START, "2024-01-15T10:30:00.000Z", id="whole-second"),
            pytest.param(START.replace(microsecond=999999), "2024-01-15T10:30:00.999Z", id="truncates-999999us"),
            pytest.param(START.replace(microsecond=1999), "2024-01-15T10:30:00.001Z", id="truncates-1999us"),
            pytest.param(START.replace(microsecond=250000), "2024-01-15T10:30:00.250Z", id="keeps-trailing-zeros"),
            pytest.param(datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC), "0999-03-04T05:06:07.000Z", id="year-0999"),
            pytest.param(datetime(9, 1, 1, tzinfo=UTC), "0009-01-01T00:00:00.000Z", id="year-0009"),
        ],
    )
    def test_gives_exactly_the_one_format(self, moment, expected):
        """``YYYY-MM-DDTHH:mm:ss.sssZ``, zero-padded, milliseconds truncated not rounded."""
        assert expected == format_timestamp(moment)

    def test_converts_an_offset_to_utc(self):
        """A +02:00 datetime is written as the same instant in UTC."""
        moment = datetime(2024, 1, 15, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))

        assert "2024-01-15T10:30:00.123Z" == format_timestamp(moment)

    def test_converts_across_a_date_boundary(self):
        """A -05:30 evening is the next UTC day."""
        moment = datetime(2024, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))

        assert "2025-01-01T01:30:00.000Z" == format_timestamp(moment)


class TestParseTimestamp:
    def test_gives_an_aware_utc_datetime(self):
        """The one format parses to a UTC datetime with millisecond precision."""
        assert datetime(2024, 1, 15, 10, 30, 0, 123000, tzinfo=UTC) == parse_timestamp("2024-01-15T10:30:00.123Z")
        assert UTC is parse_timestamp("2024-01-15T10:30:00.123Z").tzinfo

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("2024-01-15T10:30:00Z", id="no-milliseconds"),
            pytest.param("2024-01-15T10:30:00.000+00:00", id="offset-instead-of-Z"),
            pytest.param("2024-01-15T10:30:00.0000Z", id="four-fraction-digits"),
            pytest.param("2024-01-15T10:30:00.00Z", id="two-fraction-digits"),
            pytest.param("2024-01-15T10:30:00.000z", id="lowercase-z"),
            pytest.param("2024-01-15T10:30:00.000", id="no-zone"),
            pytest.param("2024-01-15 10:30:00.000Z", id="space-separator"),
            pytest.param("2024-1-15T10:30:00.000Z", id="unpadded-month"),
            pytest.param(" 2024-01-15T10:30:00.000Z", id="leading-space"),
            pytest.param("2024-01-15T10:30:00.000Z\n", id="trailing-newline"),
            pytest.param("2024-02-30T10:30:00.000Z", id="no-such-day"),
            pytest.param("", id="empty"),
        ],
    )
    def test_rejects_other_text(self, text):
        """Any text but exactly ``YYYY-MM-DDTHH:mm:ss.sssZ`` is a ValueError."""
        with pytest.raises(ValueError):
            parse_timestamp(text)

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(None, id="none"),
            pytest.param(1705314600, id="epoch-seconds"),
            pytest.param(b"2024-01-15T10:30:00.000Z", id="bytes"),
            pytest.param(START, id="datetime"),
        ],
    )
    def test_rejects_non_strings(self, value):
        """Only a str is parsed."""
        with pytest.raises(ValueError, match="YYYY-MM-DDTHH:mm:ss.sssZ"):
            parse_timestamp(value)

    def test_rejects_non_ascii_digits(self):
        """Arabic-Indic digits are not the ASCII digits the format means."""
        with pytest.raises(ValueError):
            parse_timestamp("٢٠٢٤-01-15T10:30:00.000Z")

    @pytest.mark.parametrize(
        "text", ["2024-01-15T10:30:00.000Z", "0999-12-31T23:59:59.999Z", "2024-02-29T00:00:00.001Z"]
    )
    def test_text_round_trips(self, text):
        """Formatting a parsed timestamp gives back the same text."""
        assert text == format_timestamp(parse_timestamp(text))

    def test_datetime_round_trips_to_the_millisecond(self):
        """Parsing a formatted datetime gives it back, truncated to the millisecond."""
        moment = datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)

        assert moment.replace(microsecond=123000) == parse_timestamp(format_timestamp(moment))


ROUND_TRIP_MODELS = [
    pytest.param(FULL_SESSION, id="PlaytimeSession-full"),
    pytest.param(MINIMAL_SESSION, id="PlaytimeSession-minimal"),
    pytest.param(
        PlaytimeSessionResult(
            session_id="session-1", user_id="player-1", duration_seconds=90, recorded=False, created_at=END
        ),
        id="PlaytimeSessionResult",
    ),
    pytest.param(
        BulkPlaytimeRequest(sessions=[FULL_SESSION, MINIMAL_SESSION], callback_id="cb", is_test=True),
        id="BulkPlaytimeRequest",
    ),
    pytest.param(BulkItemResult(session_id="session-1", status="FAILED", error="duplicate"), id="BulkItemResult"),
    pytest.param(
        BulkPlaytimeResult(
            total_requested=2,
            successful=1,
            failed=0,
            skipped=1,
            results=[
                BulkItemResult(session_id="session-1", status="SUCCESS"),
                BulkItemResult(session_id="session-2", status="SKIPPED"),
            ],
        ),
        id="BulkPlaytimeResult",
    ),
    pytest.param(FULL_EVENT, id="CharacterEvent-full"),
    pytest.param(
        CharacterEvent(character_id="C0FFEE", event_name="level_completed", playfab_id="A1B2C3"),
        id="CharacterEvent-minimal",
    ),
    pytest.param(CharacterEventResult(event_id="EV-1"), id="CharacterEventResult"),
    pytest.param(
        PlayFabError(
            code=400,
            status="BadRequest",
            error="CharacterNotFound",
            error_code=1135,
            error_message="Character not found",
            error_details={"CharacterId": ("not owned by this user",)},
        ),
        id="PlayFabError-details",
    ),
    pytest.param(
        PlayFabError(
            code=429,
            status="TooManyRequests",
            error="APIClientRequestRateLimitExceeded",
            error_code=1199,
            error_message="...",
            retry_after_seconds=8,
        ),
        id="PlayFabError-retry-after",
    ),
    pytest.param(
        PlayCampError(
            code="VALIDATION_ERROR",
            error="Validation Error",
            details=[PlayCampErrorDetail(message="Required", path="userId", target="body")],
        ),
        id="PlayCampError",
    ),
    pytest.param(PlayCampErrorDetail(message="Required"), id="PlayCampErrorDetail"),
]


class TestStructureRoundTrip:
    @pytest.mark.parametrize("model", ROUND_TRIP_MODELS)
    def test_every_model_round_trips_through_bytes(self, model):
        """Encoding a model and structuring the decoded JSON gives back an equal model."""
        assert model == structure(json.loads(encode(unstructure(model))), type(model))

    def test_spec_example_body_structures(self):
        """The spec's own example request is a valid PlaytimeSession."""
        expected = PlaytimeSession(
            session_id="<string>",
            user_id="<string>",
            duration_seconds=2,
            started_at=datetime(2023, 11, 7, 5, 31, 56, tzinfo=UTC),
            ended_at=datetime(2023, 11, 7, 5, 31, 58, tzinfo=UTC),
            campaign_id="<string>",
            creator_key="AB12C",
            platform="Other",
            metadata={},
            callback_id="<string>",
            is_test=False,
        )

        assert expected == structure(SPEC_EXAMPLE_BODY, PlaytimeSession)

    def test_response_models_ignore_unknown_fields(self):
        """A server's answer may grow new fields without breaking the client."""
        data = {"EventId": "EV-1", "Extra": True}

        assert CharacterEventResult(event_id="EV-1") == structure(data, CharacterEventResult)

    def test_playfab_requests_ignore_unknown_fields(self):
        """Unlike PlayCamp, PlayFab ignores request keys it does not know."""
        data = {**FULL_EVENT_JSON, "Extra": True}

        assert FULL_EVENT == structure(data, CharacterEvent)


class TestStructureStrictTypes:
    @pytest.mark.parametrize(
        "value",
        [pytest.param("7", id="numeric-string"), pytest.param(True, id="true"), pytest.param(2.0, id="float-2.0")],
    )
    def test_rejects_non_integers_for_duration(self, value):
        """durationSeconds must be a JSON integer: no coercion from strings, booleans or floats."""
        assert_wire_error("durationSeconds", "must be an integer", session_json(durationSeconds=value), PlaytimeSession)

    @pytest.mark.parametrize(
        "value",
        [pytest.param("7", id="numeric-string"), pytest.param(True, id="true"), pytest.param(2.0, id="float-2.0")],
    )
    def test_rejects_non_integers_for_playfab_error_code(self, value):
        """The PlayFab wrapper's errorCode is strict too."""
        data = {**PLAYFAB_429_BODY, "errorCode": value}

        assert_wire_error("errorCode", "must be an integer", data, PlayFabError)

    def test_rejects_non_integers_for_bulk_counts(self):
        """A bulk result's counts are strict integers."""
        data = {"totalRequested": "1", "successful": 1, "failed": 0, "skipped": 0, "results": []}

        assert_wire_error("totalRequested", "must be an integer", data, BulkPlaytimeResult)

    @pytest.mark.parametrize("value", [7, ["player-1"]], ids=["int", "list"])
    def test_rejects_non_strings(self, value):
        """A string field takes only a JSON string."""
        assert_wire_error("userId", "must be a string", session_json(userId=value), PlaytimeSession)

    @pytest.mark.parametrize("value", [1, "true"], ids=["int", "string"])
    def test_rejects_non_booleans(self, value):
        """isTest takes only true or false."""
        assert_wire_error("isTest", "must be true or false", session_json(isTest=value), PlaytimeSession)

    @pytest.mark.parametrize(
        "value",
        ["2024-01-15T10:30:00Z", "2024-01-15T10:30:00.000+00:00", "2024-01-15T10:30:00.000z", 1705314600],
        ids=["no-milliseconds", "offset", "lowercase-z", "epoch-seconds"],
    )
    def test_rejects_other_timestamp_formats(self, value):
        """startedAt must be exactly ``YYYY-MM-DDTHH:mm:ss.sssZ``."""
        assert_wire_error("startedAt", "YYYY-MM-DDTHH:mm:ss.sssZ", session_json(startedAt=value), PlaytimeSession)

    def test_rejects_a_non_object(self):
        """The body must be a JSON object."""
        assert_wire_error("$", "must be a JSON object", [VALID_SESSION_JSON], PlaytimeSession)


class TestStructureFields:
    @pytest.mark.parametrize(
        "data, cls",
        [
            pytest.param(session_json(sessionID="x"), PlaytimeSession, id="PlaytimeSession"),
            pytest.param({"sessions": [VALID_SESSION_JSON], "sessionID": "x"}, BulkPlaytimeRequest, id="bulk"),
        ],
    )
    def test_rejects_unknown_fields_of_a_request(self, data, cls):
        """A request with a key the API does not define is refused, the key named."""
        assert_wire_error("$", "has unknown fields: sessionID", data, cls)

    def test_names_an_unknown_field_inside_a_bulk_item(self):
        """An unknown key in one bulk session is reported at that session's index."""
        data = {"sessions": [VALID_SESSION_JSON, session_json(extra=1)]}

        assert_wire_error("sessions[1]", "has unknown fields: extra", data, BulkPlaytimeRequest)

    @pytest.mark.parametrize(
        "data, cls, field",
        [
            pytest.param(session_json(userId=None), PlaytimeSession, "userId", id="userId"),
            pytest.param(session_json(endedAt=None), PlaytimeSession, "endedAt", id="endedAt"),
            pytest.param({"EventName": "e", "PlayFabId": "p"}, CharacterEvent, "CharacterId", id="CharacterId"),
            pytest.param({}, CharacterEventResult, "EventId", id="EventId"),
            pytest.param({}, BulkPlaytimeRequest, "sessions", id="sessions"),
        ],
    )
    def test_names_a_missing_required_key_by_its_wire_name(self, data, cls, field):
        """A missing key is ``<wireName>: is required``."""
        assert_wire_error(field, f"{field}: is required", data, cls)

    @pytest.mark.parametrize(
        "field, value, words",
        [
            pytest.param("creatorKey", "ab12c", "^[A-Z0-9]{5}$", id="creatorKey"),
            pytest.param("platform", "PC", "must be one of", id="platform"),
            pytest.param("durationSeconds", 0, "must be >= 1", id="durationSeconds"),
            pytest.param("endedAt", "2024-01-15T10:29:59.999Z", "must not precede the start", id="endedAt"),
            pytest.param("metadata", {"x": float("nan")}, "must hold only JSON values", id="metadata"),
        ],
    )
    def test_names_a_model_rule_by_its_wire_name(self, field, value, words):
        """A rule the model enforces is reported under the JSON key, not the Python name."""
        assert_wire_error(field, words, session_json(**{field: value}), PlaytimeSession)

    def test_names_an_event_rule_by_its_pascal_case_name(self):
        """A bad event name is reported as ``EventName``."""
        data = {"CharacterId": "c", "EventName": "level completed", "PlayFabId": "p"}

        assert_wire_error("EventName", "^[A-Za-z0-9_]{1,64}$", data, CharacterEvent)

    @pytest.mark.parametrize(
        "key, value, words",
        [
            pytest.param("creatorKey", "ab12c", "^[A-Z0-9]{5}$", id="creatorKey"),
            pytest.param("durationSeconds", "7", "must be an integer", id="durationSeconds"),
            pytest.param("userId", None, "is required", id="missing-userId"),
        ],
    )
    def test_names_the_path_inside_a_bulk_request(self, key, value, words):
        """An error in the second bulk session names ``sessions[1].<key>``."""
        data = {"sessions": [VALID_SESSION_JSON, session_json(**{key: value})]}

        assert_wire_error(f"sessions[1].{key}", words, data, BulkPlaytimeRequest)

    @pytest.mark.parametrize("count", [0, 1001])
    def test_rejects_a_bulk_request_outside_one_to_a_thousand(self, count):
        """The bulk size rule holds on the server side too."""
        data = {"sessions": [session_json(sessionId=f"s-{index}") for index in range(count)]}

        assert_wire_error("sessions", "must hold 1 to 1000 sessions", data, BulkPlaytimeRequest)

    def test_names_the_path_inside_bulk_results(self):
        """A bad status in a bulk answer names ``results[0].status``."""
        data = {
            "totalRequested": 1,
            "successful": 1,
            "failed": 0,
            "skipped": 0,
            "results": [{"sessionId": "s", "status": "OK"}],
        }

        assert_wire_error("results[0].status", "must be one of SUCCESS, SKIPPED, FAILED", data, BulkPlaytimeResult)


class TestPlayFabErrorJson:
    def test_the_429_body_of_the_notes_structures(self):
        """PlayFab's throttling body, as apis-notes.md quotes it, is a PlayFabError."""
        expected = PlayFabError(
            code=429,
            status="TooManyRequests",
            error="APIClientRequestRateLimitExceeded",
            error_code=1199,
            error_message="...",
            retry_after_seconds=8,
        )

        assert expected == structure(PLAYFAB_429_BODY, PlayFabError)

    def test_the_wrapper_speaks_camel_case(self):
        """The ApiErrorWrapper's keys are camelCase, unlike PlayFab's requests and data."""
        error = PlayFabError(
            code=400,
            status="BadRequest",
            error="InvalidRequest",
            error_code=1071,
            error_message="Invalid request",
            error_details={"EventName": ("too long",)},
            retry_after_seconds=3,
        )

        expected = {
            "code": 400,
            "status": "BadRequest",
            "error": "InvalidRequest",
            "errorCode": 1071,
            "errorMessage": "Invalid request",
            "errorDetails": {"EventName": ["too long"]},
            "retryAfterSeconds": 3,
        }

        assert expected == json.loads(encode(unstructure(error)))

    def test_error_details_structure_as_tuples(self):
        """errorDetails maps each field to its messages."""
        data = {
            "code": 400,
            "status": "BadRequest",
            "error": "InvalidParams",
            "errorCode": 1000,
            "errorMessage": "Invalid input parameters",
            "errorDetails": {"EventName": ["too long", "bad characters"]},
        }

        assert {"EventName": ("too long", "bad characters")} == structure(data, PlayFabError).error_details


class TestEnvelopes:
    def test_playfab_envelope_matches_the_spec(self):
        """``{"code": 200, "status": "OK", "data": {"EventId": ...}}``, data in PascalCase."""
        expected = {"code": 200, "status": "OK", "data": {"EventId": "<string>"}}

        assert expected == playfab_envelope(CharacterEventResult(event_id="<string>"))

    def test_playcamp_envelope_matches_the_spec(self):
        """``{"data": {...}}`` with the recorded session in camelCase, as the spec's example."""
        result = PlaytimeSessionResult(
            session_id="<string>",
            user_id="<string>",
            duration_seconds=123,
            recorded=True,
            created_at=datetime(2023, 11, 7, 5, 31, 56, tzinfo=UTC),
        )
        expected = {
            "data": {
                "sessionId": "<string>",
                "userId": "<string>",
                "durationSeconds": 123,
                "recorded": True,
                "createdAt": "2023-11-07T05:31:56.000Z",
            }
        }

        assert expected == playcamp_envelope(result)

    def test_playcamp_envelope_wraps_a_bulk_result(self):
        """A bulk answer's data carries the counts and the per-session results."""
        result = BulkPlaytimeResult(
            total_requested=1,
            successful=0,
            failed=1,
            skipped=0,
            results=[BulkItemResult(session_id="s-1", status="FAILED", error="invalid")],
        )
        expected = {
            "data": {
                "totalRequested": 1,
                "successful": 0,
                "failed": 1,
                "skipped": 0,
                "results": [{"sessionId": "s-1", "status": "FAILED", "error": "invalid"}],
            }
        }

        assert expected == json.loads(encode(playcamp_envelope(result)))

    def test_playcamp_error_structures_with_details(self):
        """PlayCamp's validation error body structures with its details."""
        data = {
            "code": "VALIDATION_ERROR",
            "error": "Validation Error",
            "details": [{"message": "Required", "path": "userId", "target": "body"}],
        }

        expected = PlayCampError(
            code="VALIDATION_ERROR",
            error="Validation Error",
            details=[PlayCampErrorDetail(message="Required", path="userId", target="body")],
        )

        assert expected == structure(data, PlayCampError)
