"""The emulator over real HTTP on loopback: every rule of both contracts, auth, idempotency, routing."""

import json
import re
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional

import pytest
import urllib3

from playhooks.emulator import Emulator

SESSIONS = "/v1/server/playtime/sessions"
BULK = "/v1/server/playtime/sessions/bulk"
EVENT = "/Server/WriteCharacterEvent"
SDK_QUERY = "?sdk=PythonSdk-0.0.201014"  # what the official PlayFab Python SDK appends

ANY_KEY = "key-1:secret-1"  # well-formed: the default emulator takes any such key
SERVER_KEY = "k1:s1"  # the one key the strict emulator takes
CLIENT_KEY = "c1:s1"  # a read-only client key of the strict emulator
SECRET = "good"  # the one PlayFab secret key the strict emulator takes

# The one timestamp format of both APIs: YYYY-MM-DDTHH:mm:ss.sssZ.
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")

# The example body of spec/playcamp-playtime-sessions.md, verbatim.
SPEC_EXAMPLE = {
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
SESSION = {
    "sessionId": "session-1",
    "userId": "player-1",
    "durationSeconds": 90,
    "startedAt": "2024-01-15T10:30:00.000Z",
    "endedAt": "2024-01-15T10:31:30.000Z",
}
CHARACTER_EVENT = {"CharacterId": "C1", "EventName": "level_completed", "PlayFabId": "P1"}
PLATFORMS = ("iOS", "Android", "Web", "Roblox", "Other")

MISSING = object()  # a value of ``changed`` that removes the key


class _AnyText:
    """Equal to any non-empty string: stands for messages whose wording is the emulator's own."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<any non-empty text>"


TEXT = _AnyText()


def changed(base: Mapping[str, Any], **changes: Any) -> Dict[str, Any]:
    """A copy of ``base`` with ``changes`` applied; a ``MISSING`` value removes the key."""
    data = {**base, **changes}
    return {key: value for key, value in data.items() if value is not MISSING}


def session(number: int, **changes: Any) -> Dict[str, Any]:
    """A valid session body whose sessionId is ``session-<number>``, with ``changes`` applied."""
    return changed(SESSION, sessionId=f"session-{number}", **changes)


def validation_error(path: str) -> Dict[str, Any]:
    """PlayCamp's 400 body for one broken rule at ``path``."""
    return {
        "code": "VALIDATION_ERROR",
        "error": "Validation Error",
        "details": [{"message": TEXT, "path": path, "target": "body"}],
    }


def playcamp_error(code: str) -> Dict[str, Any]:
    """PlayCamp's body for an error other than validation (401, 403, 404)."""
    return {"code": code, "error": TEXT}


def playfab_error(status: int, error: str, error_code: int, details: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """PlayFab's ApiErrorWrapper, with ``errorDetails`` only when ``details`` is given."""
    body = {
        "code": status,
        "status": {400: "BadRequest", 401: "Unauthorized"}[status],
        "error": error,
        "errorCode": error_code,
        "errorMessage": TEXT,
    }
    if details is not None:
        body["errorDetails"] = details
    return body


class Answer(NamedTuple):
    status: int
    body: Any
    content_type: str


class Api:
    """A loopback client of one emulator, speaking each service's headers."""

    def __init__(self, http: urllib3.PoolManager, url: str) -> None:
        self.http = http
        self.url = url

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: Optional[bytes] = None,
        headers: Optional[Mapping[str, Optional[str]]] = None,
    ) -> Answer:
        """Send ``body`` as JSON (or the ``raw`` bytes); a None header value leaves that header out."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode("utf-8")
        sent = {name: value for name, value in (headers or {}).items() if value is not None}
        response = self.http.request(method, self.url + path, body=data, headers=sent)
        return Answer(response.status, json.loads(response.data), response.headers.get("Content-Type", ""))

    def playcamp(
        self,
        path: str,
        body: Any = None,
        *,
        key: Optional[str] = ANY_KEY,
        raw: Optional[bytes] = None,
        headers: Optional[Mapping[str, Optional[str]]] = None,
    ) -> Answer:
        """POST to PlayCamp as its Go SDK does, with ``Authorization: Bearer <key>`` unless key is None."""
        sent = {
            "Authorization": None if key is None else f"Bearer {key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            **(headers or {}),
        }
        return self.request("POST", path, body, raw=raw, headers=sent)

    def session(self, body: Any = None, **options: Any) -> Answer:
        return self.playcamp(SESSIONS, body, **options)

    def bulk(self, body: Any = None, **options: Any) -> Answer:
        return self.playcamp(BULK, body, **options)

    def event(
        self,
        body: Any = CHARACTER_EVENT,
        *,
        raw: Optional[bytes] = None,
        headers: Optional[Mapping[str, Optional[str]]] = None,
    ) -> Answer:
        """POST to WriteCharacterEvent with the SDK's query string, a JSON Content-Type and ``SECRET``."""
        sent = {"Content-Type": "application/json", "X-SecretKey": SECRET, **(headers or {})}
        return self.request("POST", EVENT + SDK_QUERY, body, raw=raw, headers=sent)

    def recorded(self, name: str) -> List[Any]:
        """What ``GET /_emulator/<name>`` lists: sessions, events or rejected."""
        answer = self.request("GET", "/_emulator/" + name)
        assert 200 == answer.status
        return answer.body[name]


@pytest.fixture(scope="module")
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2.0, read=10.0), retries=False)
    yield pool
    pool.clear()


@pytest.fixture(scope="module")
def default_emulator() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def strict_emulator() -> Iterator[Emulator]:
    with Emulator(
        playcamp_keys=[SERVER_KEY],
        playcamp_client_keys=[CLIENT_KEY],
        playfab_secret_keys=[SECRET],
        characters={"P1": ["C1"], "P2": ["C2"]},
    ) as emulator:
        yield emulator


@pytest.fixture
def api(http: urllib3.PoolManager, default_emulator: Emulator) -> Api:
    """The emulator with its defaults: any well-formed key, any player and character."""
    default_emulator.reset()
    return Api(http, default_emulator.url)


@pytest.fixture
def strict_api(http: urllib3.PoolManager, strict_emulator: Emulator) -> Api:
    """The emulator that knows its keys, players and characters."""
    strict_emulator.reset()
    return Api(http, strict_emulator.url)


# -- PlayCamp: one session ------------------------------------------------------------------------


class TestPlayCampSessionAccepted:
    def test_spec_example_is_recorded(self, api):
        """The spec's example body is answered 201 with the recorded session, and stored as sent."""
        answer = api.session(SPEC_EXAMPLE)

        expected = {
            "data": {
                "sessionId": "<string>",
                "userId": "<string>",
                "durationSeconds": 2,
                "recorded": True,
                "createdAt": answer.body["data"]["createdAt"],
            }
        }
        assert (201, expected) == (answer.status, answer.body)
        assert [SPEC_EXAMPLE] == api.recorded("sessions")

    def test_created_at_is_in_the_one_timestamp_format(self, api):
        """createdAt is a UTC timestamp written YYYY-MM-DDTHH:mm:ss.sssZ."""
        created_at = api.session(SESSION).body["data"]["createdAt"]

        assert TIMESTAMP.fullmatch(created_at), created_at

    def test_answer_is_json(self, api):
        """The answer says it is JSON."""
        assert "application/json" == api.session(SESSION).content_type

    def test_minimal_session_is_recorded(self, api):
        """The five required fields alone make a session."""
        answer = api.session(SESSION)

        assert (201, True) == (answer.status, answer.body["data"]["recorded"])
        assert [SESSION] == api.recorded("sessions")

    @pytest.mark.parametrize(
        "changes",
        [
            *(pytest.param({"platform": name}, id=f"platform-{name}") for name in PLATFORMS),
            pytest.param({"creatorKey": "ZZ9ZZ"}, id="creatorKey-letters-and-digits"),
            pytest.param({"creatorKey": "00000"}, id="creatorKey-digits"),
            pytest.param({"metadata": {"zone": "Forêt", "tags": ["a", 1, None], "x": {"y": 1.5}}}, id="metadata"),
            pytest.param({"isTest": False}, id="isTest-false"),
            pytest.param({"durationSeconds": 1}, id="duration-one-second"),
            pytest.param({"endedAt": SESSION["startedAt"]}, id="ended-equal-started"),
            pytest.param({"campaignId": "campaign-7", "callbackId": "callback-9"}, id="campaign-and-callback"),
        ],
    )
    def test_each_allowed_value_is_recorded(self, api, changes):
        """Every value the spec allows is answered 201 and stored as sent."""
        body = changed(SESSION, **changes)

        assert 201 == api.session(body).status
        assert [body] == api.recorded("sessions")

    def test_test_session_is_answered_but_not_stored(self, api):
        """isTest: true is validated and answered as recorded, but creates no data."""
        answer = api.session(changed(SESSION, isTest=True))

        assert (201, True) == (answer.status, answer.body["data"]["recorded"])
        assert [] == api.recorded("sessions")


# Each rule of the spec, broken once: the body, and the field the 400 names.
SESSION_RULES = [
    *(pytest.param(changed(SESSION, **{field: MISSING}), field, id=f"{field}-missing") for field in SESSION),
    pytest.param(changed(SESSION, sessionId=""), "sessionId", id="sessionId-empty"),
    pytest.param(changed(SESSION, sessionId=7), "sessionId", id="sessionId-number"),
    pytest.param(changed(SESSION, userId=""), "userId", id="userId-empty"),
    pytest.param(changed(SESSION, userId=None), "userId", id="userId-null"),
    pytest.param(changed(SESSION, durationSeconds="7"), "durationSeconds", id="duration-numeric-string"),
    pytest.param(changed(SESSION, durationSeconds=True), "durationSeconds", id="duration-true"),
    pytest.param(changed(SESSION, durationSeconds=2.5), "durationSeconds", id="duration-fraction"),
    pytest.param(changed(SESSION, durationSeconds=90.0), "durationSeconds", id="duration-float-whole"),
    pytest.param(changed(SESSION, durationSeconds=0), "durationSeconds", id="duration-zero"),
    pytest.param(changed(SESSION, durationSeconds=-1), "durationSeconds", id="duration-negative"),
    pytest.param(changed(SESSION, endedAt="2024-01-15T10:29:59.999Z"), "endedAt", id="ended-before-started"),
    pytest.param(changed(SESSION, creatorKey="ab12c"), "creatorKey", id="creatorKey-lowercase"),
    pytest.param(changed(SESSION, creatorKey="AB12"), "creatorKey", id="creatorKey-four"),
    pytest.param(changed(SESSION, creatorKey="AB12CD"), "creatorKey", id="creatorKey-six"),
    pytest.param(changed(SESSION, creatorKey="AB-2C"), "creatorKey", id="creatorKey-dash"),
    pytest.param(changed(SESSION, creatorKey="AB12Ç"), "creatorKey", id="creatorKey-non-ascii"),
    pytest.param(changed(SESSION, creatorKey=12345), "creatorKey", id="creatorKey-number"),
    pytest.param(changed(SESSION, platform="ios"), "platform", id="platform-wrong-case"),
    pytest.param(changed(SESSION, platform="PC"), "platform", id="platform-unknown"),
    pytest.param(changed(SESSION, platform=""), "platform", id="platform-empty"),
    pytest.param(changed(SESSION, metadata=[]), "metadata", id="metadata-array"),
    pytest.param(changed(SESSION, metadata="level=3"), "metadata", id="metadata-string"),
    pytest.param(changed(SESSION, metadata=3), "metadata", id="metadata-number"),
    pytest.param(changed(SESSION, metadata={"x": "a" * 10240}), "metadata", id="metadata-over-10-KiB"),
    pytest.param(changed(SESSION, isTest="true"), "isTest", id="isTest-string"),
    pytest.param(changed(SESSION, isTest=1), "isTest", id="isTest-number"),
    pytest.param(changed(SESSION, campaignId=""), "campaignId", id="campaignId-empty"),
    pytest.param(changed(SESSION, callbackId=9), "callbackId", id="callbackId-number"),
]

# Timestamps in any format but YYYY-MM-DDTHH:mm:ss.sssZ, or naming no real moment.
NOT_THE_TIMESTAMP_FORMAT = [
    pytest.param("2024-01-15T10:30:00Z", id="no-milliseconds"),
    pytest.param("2024-01-15T10:30:00.000000Z", id="microseconds"),
    pytest.param("2024-01-15T10:30:00.00Z", id="two-fraction-digits"),
    pytest.param("2024-01-15T10:30:00.000+00:00", id="offset-instead-of-Z"),
    pytest.param("2024-01-15T12:30:00.000+02:00", id="other-offset"),
    pytest.param("2024-01-15T10:30:00.000", id="no-zone"),
    pytest.param("2024-01-15T10:30:00.000z", id="lowercase-z"),
    pytest.param("2024-01-15 10:30:00.000Z", id="space-separator"),
    pytest.param("2024-01-15", id="date-only"),
    pytest.param("Mon, 15 Jan 2024 10:30:00 GMT", id="http-date"),
    pytest.param("٢٠٢٤-01-15T10:30:00.000Z", id="arabic-indic-digits"),
    pytest.param("2024-02-30T10:30:00.000Z", id="no-such-day"),
    pytest.param("2024-01-15T24:30:00.000Z", id="hour-24"),
    pytest.param(1705314600000, id="epoch-milliseconds"),
    pytest.param("", id="empty"),
]


class TestPlayCampSessionRejected:
    @pytest.mark.parametrize("body, path", SESSION_RULES)
    def test_broken_rule_is_a_validation_error_naming_the_field(self, api, body, path):
        """A body that breaks a rule is 400 VALIDATION_ERROR whose detail names the camelCase field."""
        answer = api.session(body)

        assert (400, validation_error(path)) == (answer.status, answer.body)
        assert [] == api.recorded("sessions")

    @pytest.mark.parametrize("field", ["startedAt", "endedAt"])
    @pytest.mark.parametrize("text", NOT_THE_TIMESTAMP_FORMAT)
    def test_timestamp_in_another_format_is_rejected(self, api, field, text):
        """startedAt and endedAt take exactly YYYY-MM-DDTHH:mm:ss.sssZ."""
        answer = api.session(changed(SESSION, **{field: text}))

        assert (400, validation_error(field)) == (answer.status, answer.body)

    def test_unknown_field_is_rejected_by_name(self, api):
        """A field the spec does not list is refused, and the message names it."""
        answer = api.session(changed(SESSION, favouriteColour="green"))

        assert (400, validation_error("$")) == (answer.status, answer.body)
        assert "favouriteColour" in answer.body["details"][0]["message"]

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(b"session-1", id="text"),
            pytest.param(b'{"sessionId": "session-1"', id="truncated"),
            pytest.param(b"", id="empty"),
            pytest.param(b"\xff\xfe{}", id="not-utf8"),
            pytest.param(b"[]", id="array"),
            pytest.param(b'"session-1"', id="string"),
            pytest.param(b"null", id="null"),
        ],
    )
    def test_body_that_is_not_a_json_object_is_rejected(self, api, raw):
        """A body that is not a JSON object is 400 VALIDATION_ERROR about the whole body ("$")."""
        answer = api.session(raw=raw)

        assert (400, validation_error("$")) == (answer.status, answer.body)

    def test_rejection_is_listed(self, api):
        """A refused session is in /_emulator/rejected with its status and the reply sent."""
        answer = api.session(changed(SESSION, durationSeconds=0))

        assert [{"path": SESSIONS, "status": 400, "reply": answer.body}] == api.recorded("rejected")


class TestPlayCampAuth:
    @pytest.mark.parametrize("path", [SESSIONS, BULK])
    @pytest.mark.parametrize(
        "authorization",
        [
            pytest.param(None, id="missing"),
            pytest.param("", id="empty"),
            pytest.param("Bearer", id="bearer-alone"),
            pytest.param("Bearer key-1", id="no-colon"),
            pytest.param("Bearer :secret-1", id="empty-key-id"),
            pytest.param("Bearer key-1:", id="empty-secret"),
            pytest.param("Basic a2V5LTE6c2VjcmV0LTE=", id="basic"),
            pytest.param("key-1:secret-1", id="no-scheme"),
        ],
    )
    def test_malformed_authorization_is_unauthorized(self, api, path, authorization):
        """Anything but 'Bearer keyId:secret' with both halves non-empty is 401 UNAUTHORIZED."""
        body = {"sessions": [SESSION]} if path == BULK else SESSION

        answer = api.playcamp(path, body, key=None, headers={"Authorization": authorization})

        assert (401, playcamp_error("UNAUTHORIZED")) == (answer.status, answer.body)
        assert [] == api.recorded("sessions")

    def test_auth_is_checked_before_the_body(self, api):
        """A bad key with a bad body is answered 401, not 400."""
        assert 401 == api.session(raw=b"not json", key=None).status

    def test_without_a_key_list_any_well_formed_key_is_accepted(self, api):
        """The default emulator takes any 'keyId:secret', splitting on the first colon only."""
        assert 201 == api.session(SESSION, key="any-id:any:secret").status

    def test_configured_key_is_accepted(self, strict_api):
        """With playcamp_keys, the listed key records sessions."""
        assert 201 == strict_api.session(SESSION, key=SERVER_KEY).status

    @pytest.mark.parametrize(
        "key", [pytest.param("k1:wrong", id="wrong-secret"), pytest.param("k2:s1", id="wrong-key-id")]
    )
    def test_unlisted_key_is_unauthorized(self, strict_api, key):
        """With playcamp_keys, any other server key is 401 UNAUTHORIZED."""
        answer = strict_api.session(SESSION, key=key)

        assert (401, playcamp_error("UNAUTHORIZED")) == (answer.status, answer.body)
        assert [] == strict_api.recorded("sessions")

    @pytest.mark.parametrize("path", [SESSIONS, BULK])
    def test_client_key_is_forbidden(self, strict_api, path):
        """A read-only client key on a server endpoint is 403 FORBIDDEN."""
        answer = strict_api.playcamp(path, {"sessions": [SESSION]} if path == BULK else SESSION, key=CLIENT_KEY)

        assert (403, playcamp_error("FORBIDDEN")) == (answer.status, answer.body)
        assert [] == strict_api.recorded("sessions")

    @pytest.mark.parametrize(
        "how, status",
        [
            pytest.param({"body": SESSION, "key": None}, 401, id="no-key"),
            pytest.param({"raw": b"not json"}, 400, id="not-json"),
        ],
    )
    def test_every_refusal_is_listed_as_rejected(self, api, how, status):
        """A 401, or a 400 for a body that is not JSON, is in /_emulator/rejected as PlayFab's are."""
        answer = api.session(**how)

        assert [{"path": SESSIONS, "status": status, "reply": answer.body}] == api.recorded("rejected")


class TestPlayCampIdempotency:
    def test_repeat_is_answered_200_not_recorded(self, api):
        """The first sending is 201 recorded; the same sessionId again is 200 with recorded: false."""
        first = api.session(SESSION)
        repeat = api.session(SESSION)

        assert (201, True) == (first.status, first.body["data"]["recorded"])
        assert (200, False) == (repeat.status, repeat.body["data"]["recorded"])

    def test_repeat_with_other_values_keeps_the_first_row(self, api):
        """A re-send with different values does not update the stored row, nor add one."""
        api.session(SESSION)

        api.session(changed(SESSION, userId="player-2", durationSeconds=5, platform="Web"))

        assert [SESSION] == api.recorded("sessions")

    def test_repeat_answer_keeps_the_first_creation_time(self, api):
        """createdAt of a repeat is the stored row's."""
        first = api.session(SESSION)
        repeat = api.session(SESSION)

        assert first.body["data"]["createdAt"] == repeat.body["data"]["createdAt"]

    def test_repeat_answer_describes_the_stored_row(self, api):
        """data is the recorded session, so a repeat with other values is answered with the first row's values."""
        first = api.session(SESSION)

        repeat = api.session(changed(SESSION, userId="player-2", durationSeconds=5))

        assert {**first.body["data"], "recorded": False} == repeat.body["data"]

    def test_rejected_session_does_not_take_its_id(self, api):
        """A refused session stores nothing, so its sessionId can then be recorded."""
        api.session(changed(SESSION, durationSeconds=0))

        assert 201 == api.session(SESSION).status

    def test_test_session_does_not_take_its_id(self, api):
        """An isTest session stores nothing, so the same sessionId is then recorded for real."""
        api.session(changed(SESSION, isTest=True))

        assert 201 == api.session(SESSION).status
        assert [SESSION] == api.recorded("sessions")


# -- PlayCamp: bulk --------------------------------------------------------------------------------


class TestPlayCampBulk:
    def test_a_thousand_sessions_are_accepted(self, api):
        """1000 sessions, the documented maximum, are all recorded."""
        sessions = [session(number) for number in range(1000)]

        answer = api.bulk({"sessions": sessions})

        data = answer.body["data"]
        assert (200, 1000, 1000, 0, 0) == (
            answer.status,
            data["totalRequested"],
            data["successful"],
            data["failed"],
            data["skipped"],
        )
        assert sessions == api.recorded("sessions")

    @pytest.mark.parametrize(
        "body, path",
        [
            pytest.param({"sessions": [session(n) for n in range(1001)]}, "sessions", id="1001-sessions"),
            pytest.param({"sessions": []}, "sessions", id="no-sessions"),
            pytest.param({"sessions": session(1)}, "sessions", id="sessions-an-object"),
            pytest.param({"sessions": "session-1"}, "sessions", id="sessions-a-string"),
            pytest.param({"sessions": None}, "sessions", id="sessions-null"),
            pytest.param({"callbackId": "cb"}, "sessions", id="sessions-missing"),
            pytest.param([session(1)], "$", id="body-an-array"),
            pytest.param({"sessions": [session(1)], "dryRun": True}, "$", id="unknown-top-level-field"),
            pytest.param({"sessions": [session(1)], "callbackId": ""}, "callbackId", id="callbackId-empty"),
            pytest.param({"sessions": [session(1)], "isTest": "yes"}, "isTest", id="isTest-string"),
        ],
    )
    def test_bad_envelope_is_a_validation_error(self, api, body, path):
        """A bulk request whose envelope breaks a rule is 400 as a whole, and stores nothing."""
        answer = api.bulk(body)

        assert (400, validation_error(path)) == (answer.status, answer.body)
        assert [] == api.recorded("sessions")

    def test_non_json_body_is_a_validation_error(self, api):
        """A bulk body that is not JSON is 400 about the whole body."""
        answer = api.bulk(raw=b"sessions=1")

        assert (400, validation_error("$")) == (answer.status, answer.body)

    def test_each_item_gets_its_own_status(self, api):
        """Items are SUCCESS, SKIPPED when stored before or repeated in the request, FAILED when broken."""
        api.session(session(1))
        body = {
            "sessions": [
                session(1),  # stored by an earlier request
                session(2),
                session(2, userId="player-2"),  # repeated within this request
                session(3, creatorKey="nope"),
                session(4),
            ]
        }

        answer = api.bulk(body)

        expected = {
            "data": {
                "totalRequested": 5,
                "successful": 2,
                "failed": 1,
                "skipped": 2,
                "results": [
                    {"sessionId": "session-1", "status": "SKIPPED"},
                    {"sessionId": "session-2", "status": "SUCCESS"},
                    {"sessionId": "session-2", "status": "SKIPPED"},
                    {"sessionId": "session-3", "status": "FAILED", "error": TEXT},
                    {"sessionId": "session-4", "status": "SUCCESS"},
                ],
            }
        }
        assert (200, expected) == (answer.status, answer.body)
        assert [session(1), session(2), session(4)] == api.recorded("sessions")

    @pytest.mark.parametrize(
        "item, field",
        [
            pytest.param(session(1, durationSeconds="7"), "durationSeconds", id="duration-string"),
            pytest.param(session(1, durationSeconds=0), "durationSeconds", id="duration-zero"),
            pytest.param(session(1, userId=MISSING), "userId", id="userId-missing"),
            pytest.param(session(1, startedAt="2024-01-15T10:30:00Z"), "startedAt", id="startedAt-format"),
            pytest.param(session(1, endedAt="2024-01-15T10:00:00.000Z"), "endedAt", id="ended-before-started"),
            pytest.param(session(1, creatorKey="ab12c"), "creatorKey", id="creatorKey-pattern"),
            pytest.param(session(1, platform="PC"), "platform", id="platform-unknown"),
            pytest.param(session(1, metadata=[]), "metadata", id="metadata-array"),
            pytest.param(session(1, isTest="no"), "isTest", id="isTest-string"),
            pytest.param(session(1, favouriteColour="green"), "favouriteColour", id="unknown-field"),
        ],
    )
    def test_failed_item_error_names_the_field(self, api, item, field):
        """A broken item is FAILED, under its sessionId, with an error that names the broken field."""
        answer = api.bulk({"sessions": [item, session(2)]})

        failed, succeeded = answer.body["data"]["results"]
        assert ("session-1", "FAILED") == (failed["sessionId"], failed["status"])
        assert field in failed["error"]
        assert {"sessionId": "session-2", "status": "SUCCESS"} == succeeded
        assert [session(2)] == api.recorded("sessions")

    def test_item_that_is_not_an_object_fails_under_its_index(self, api):
        """An item with no sessionId to report is named by its place in the array."""
        answer = api.bulk({"sessions": [session(1), "session-2"]})

        expected = {"sessionId": "sessions[1]", "status": "FAILED", "error": TEXT}
        assert expected == answer.body["data"]["results"][1]

    def test_counts_add_up(self, api):
        """successful + failed + skipped == totalRequested == the number of items."""
        api.session(session(1))
        items = [session(1), session(2), session(3, durationSeconds=0), session(2), "x", session(4)]

        data = api.bulk({"sessions": items}).body["data"]

        assert len(items) == data["totalRequested"] == data["successful"] + data["failed"] + data["skipped"]
        assert len(items) == len(data["results"])

    def test_test_request_is_answered_but_not_stored(self, api):
        """With top-level isTest: true, sessions are validated and answered, but nothing is stored."""
        answer = api.bulk({"sessions": [session(1), session(2, durationSeconds=0)], "isTest": True})

        assert ["SUCCESS", "FAILED"] == [result["status"] for result in answer.body["data"]["results"]]
        assert [] == api.recorded("sessions")

    def test_test_request_stores_nothing_whatever_its_items_say(self, api):
        """A test request creates no data, even for an item that says isTest: false."""
        api.bulk({"sessions": [session(1, isTest=False)], "isTest": True})

        assert [] == api.recorded("sessions")

    def test_callback_id_is_accepted(self, api):
        """A top-level callbackId is allowed."""
        answer = api.bulk({"sessions": [session(1)], "callbackId": "callback-9", "isTest": False})

        assert (200, 1) == (answer.status, answer.body["data"]["successful"])

    def test_bulk_then_single_repeat_is_not_recorded(self, api):
        """Bulk and single requests share one store: a session sent in bulk is a repeat afterwards."""
        api.bulk({"sessions": [session(1)]})

        answer = api.session(session(1))

        assert (200, False) == (answer.status, answer.body["data"]["recorded"])


# -- PlayFab: WriteCharacterEvent -----------------------------------------------------------------


class TestPlayFabAccepted:
    def test_event_is_answered_with_an_event_id(self, api):
        """A valid event is 200 with PlayFab's envelope and a non-empty ASCII EventId."""
        answer = api.event(CHARACTER_EVENT)

        event_id = answer.body["data"]["EventId"]
        assert (200, {"code": 200, "status": "OK", "data": {"EventId": event_id}}) == (answer.status, answer.body)
        assert isinstance(event_id, str) and event_id and event_id.isascii()
        assert "application/json" == answer.content_type

    @pytest.mark.parametrize("query", ["", SDK_QUERY, "?sdk=PythonSdk-0.0.201014&EventName=not%20valid"])
    def test_query_string_is_ignored(self, api, query):
        """The path alone routes the call; the SDK's ?sdk=... query (or any other) changes nothing."""
        headers = {"Content-Type": "application/json", "X-SecretKey": SECRET}

        answer = api.request("POST", EVENT + query, CHARACTER_EVENT, headers=headers)

        assert 200 == answer.status
        assert [CHARACTER_EVENT] == api.recorded("events")

    def test_each_event_gets_its_own_id(self, api):
        """Two events get two EventIds."""
        first, second = api.event(), api.event()

        assert first.body["data"]["EventId"] != second.body["data"]["EventId"]

    def test_every_field_is_recorded_as_sent(self, api):
        """Body, Timestamp and CustomTags are accepted and the event stored as sent."""
        event = changed(
            CHARACTER_EVENT,
            Body={"level": 3, "zone": "Forêt", "items": [1, None, {"x": 1.5}]},
            Timestamp="2024-01-15T10:30:00.000Z",
            CustomTags={"build": "1.2"},
        )

        assert 200 == api.event(event).status
        assert [event] == api.recorded("events")

    @pytest.mark.parametrize(
        "content_type",
        ["application/json", "application/json; charset=utf-8", "Application/JSON"],
    )
    def test_json_content_type_with_parameters_is_accepted(self, api, content_type):
        """The media type decides, whatever its case or parameters."""
        assert 200 == api.event(headers={"Content-Type": content_type}).status

    def test_unknown_field_is_ignored(self, api):
        """PlayFab ignores fields it does not know (the emulator's documented choice)."""
        assert 200 == api.event(changed(CHARACTER_EVENT, Extra=1)).status

    def test_body_of_exactly_10_KiB_is_accepted(self, api):
        """Body may encode to 10240 bytes of compact JSON."""
        body = {"x": "a" * (10240 - len('{"x":""}'))}

        assert 200 == api.event(changed(CHARACTER_EVENT, Body=body)).status

    def test_known_player_and_character_are_accepted(self, strict_api):
        """With characters given, a listed player's own character takes events."""
        assert 200 == strict_api.event(changed(CHARACTER_EVENT, PlayFabId="P2", CharacterId="C2")).status



# Each field rule broken once: the event, and the PascalCase field errorDetails names.
EVENT_RULES = [
    *(pytest.param(changed(CHARACTER_EVENT, **{f: MISSING}), f, id=f"{f}-missing") for f in CHARACTER_EVENT),
    pytest.param(changed(CHARACTER_EVENT, CharacterId=""), "CharacterId", id="CharacterId-empty"),
    pytest.param(changed(CHARACTER_EVENT, CharacterId=5), "CharacterId", id="CharacterId-number"),
    pytest.param(changed(CHARACTER_EVENT, PlayFabId=None), "PlayFabId", id="PlayFabId-null"),
    pytest.param(changed(CHARACTER_EVENT, EventName="level completed"), "EventName", id="EventName-space"),
    pytest.param(changed(CHARACTER_EVENT, EventName="level-completed"), "EventName", id="EventName-dash"),
    pytest.param(changed(CHARACTER_EVENT, EventName="niveau_réussi"), "EventName", id="EventName-accent"),
    pytest.param(changed(CHARACTER_EVENT, EventName="e" * 65), "EventName", id="EventName-65-chars"),
    pytest.param(changed(CHARACTER_EVENT, EventName=""), "EventName", id="EventName-empty"),
    pytest.param(changed(CHARACTER_EVENT, EventName=7), "EventName", id="EventName-number"),
    pytest.param(changed(CHARACTER_EVENT, Body=[]), "Body", id="Body-array"),
    pytest.param(changed(CHARACTER_EVENT, Body="level=3"), "Body", id="Body-string"),
    pytest.param(changed(CHARACTER_EVENT, Body={"x": "a" * 10233}), "Body", id="Body-over-10-KiB"),
    pytest.param(changed(CHARACTER_EVENT, CustomTags=[]), "CustomTags", id="CustomTags-array"),
    pytest.param(changed(CHARACTER_EVENT, CustomTags={"a": 1}), "CustomTags", id="CustomTags-number-value"),
    pytest.param(changed(CHARACTER_EVENT, CustomTags={"a": None}), "CustomTags", id="CustomTags-null-value"),
    pytest.param(changed(CHARACTER_EVENT, Timestamp="2024-01-15T10:30:00Z"), "Timestamp", id="Timestamp-no-ms"),
    pytest.param(changed(CHARACTER_EVENT, Timestamp="2024-01-15T10:30:00+00:00"), "Timestamp", id="Timestamp-offset"),
    pytest.param(changed(CHARACTER_EVENT, Timestamp="2024-13-01T10:30:00.000Z"), "Timestamp", id="Timestamp-month-13"),
    pytest.param(changed(CHARACTER_EVENT, Timestamp=1705314600), "Timestamp", id="Timestamp-number"),
]

# Every kind of refusal, sent to the strict emulator: how to send it, and what it is answered.
PLAYFAB_REFUSALS = [
    pytest.param({"headers": {"X-SecretKey": None}}, 401, "NotAuthenticated", 1074, id="no-secret-key"),
    pytest.param({"headers": {"X-SecretKey": "bad"}}, 401, "NotAuthorized", 1089, id="wrong-secret-key"),
    pytest.param({"headers": {"Content-Type": "text/plain"}}, 400, "InvalidContentType", 1144, id="text-plain"),
    pytest.param({"raw": b"{not json"}, 400, "InvalidRequest", 1071, id="not-json"),
    pytest.param({"body": changed(CHARACTER_EVENT, EventName="a b")}, 400, "InvalidParams", 1000, id="bad-field"),
    pytest.param({"body": changed(CHARACTER_EVENT, PlayFabId="P9")}, 400, "AccountNotFound", 1001, id="unknown-player"),
    pytest.param({"body": changed(CHARACTER_EVENT, CharacterId="C9")}, 400, "CharacterNotFound", 1135, id="no-char"),
]


class TestPlayFabRejected:
    @pytest.mark.parametrize("secret", [pytest.param(None, id="missing"), pytest.param("", id="empty")])
    def test_no_secret_key_is_not_authenticated(self, api, secret):
        """Without X-SecretKey the call is 401 NotAuthenticated (1074)."""
        answer = api.event(headers={"X-SecretKey": secret})

        assert (401, playfab_error(401, "NotAuthenticated", 1074)) == (answer.status, answer.body)

    def test_wrong_secret_key_is_not_authorized(self, strict_api):
        """With playfab_secret_keys, another key is 401 NotAuthorized (1089)."""
        answer = strict_api.event(headers={"X-SecretKey": "not-" + SECRET})

        assert (401, playfab_error(401, "NotAuthorized", 1089)) == (answer.status, answer.body)

    @pytest.mark.parametrize(
        "content_type",
        [
            pytest.param("text/plain", id="text-plain"),
            pytest.param("application/x-www-form-urlencoded", id="form"),
            pytest.param(None, id="missing"),
        ],
    )
    def test_other_content_type_is_invalid(self, api, content_type):
        """A body not declared application/json is 400 InvalidContentType (1144)."""
        answer = api.event(headers={"Content-Type": content_type})

        assert (400, playfab_error(400, "InvalidContentType", 1144)) == (answer.status, answer.body)

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(b"{not json", id="truncated"),
            pytest.param(b"", id="empty"),
            pytest.param(b"\xff\xfe", id="not-utf8"),
        ],
    )
    def test_non_json_body_is_an_invalid_request(self, api, raw):
        """A body that is not JSON is 400 InvalidRequest (1071)."""
        answer = api.event(raw=raw)

        assert (400, playfab_error(400, "InvalidRequest", 1071)) == (answer.status, answer.body)

    def test_non_standard_nan_literal_is_not_json(self, api):
        """NaN is not JSON: a body holding it is 400 InvalidRequest (1071) and stores nothing."""
        answer = api.event(raw=b'{"CharacterId": "C1", "EventName": "e", "PlayFabId": "P1", "Extra": NaN}')

        assert (400, playfab_error(400, "InvalidRequest", 1071)) == (answer.status, answer.body)
        assert [] == api.recorded("events")

    @pytest.mark.parametrize("event, field", EVENT_RULES)
    def test_broken_field_rule_is_invalid_params_naming_the_field(self, api, event, field):
        """A field that breaks a rule is 400 InvalidParams (1000) with errorDetails keyed by that field."""
        answer = api.event(event)

        expected = playfab_error(400, "InvalidParams", 1000, details={field: [TEXT]})
        assert (400, expected) == (answer.status, answer.body)
        assert [] == api.recorded("events")

    def test_unknown_player_is_account_not_found(self, strict_api):
        """With characters given, an unknown PlayFabId is AccountNotFound (1001)."""
        answer = strict_api.event(changed(CHARACTER_EVENT, PlayFabId="P9"))

        assert (400, playfab_error(400, "AccountNotFound", 1001)) == (answer.status, answer.body)

    @pytest.mark.parametrize("character", [pytest.param("C9", id="unknown"), pytest.param("C2", id="another-players")])
    def test_character_not_of_the_player_is_not_found(self, strict_api, character):
        """With characters given, a character the player does not own is CharacterNotFound (1135)."""
        answer = strict_api.event(changed(CHARACTER_EVENT, CharacterId=character))

        assert (400, playfab_error(400, "CharacterNotFound", 1135)) == (answer.status, answer.body)
        assert [] == strict_api.recorded("events")

    @pytest.mark.parametrize("how, status, error, error_code", PLAYFAB_REFUSALS)
    def test_error_body_is_exactly_an_api_error_wrapper(self, strict_api, how, status, error, error_code):
        """Every error body has exactly code, status, error, errorCode, errorMessage (+ errorDetails)."""
        answer = strict_api.event(**how)

        expected_keys = {"code", "status", "error", "errorCode", "errorMessage"}
        if error_code == 1000:
            expected_keys.add("errorDetails")
        body = answer.body
        assert (status, status, error, error_code) == (answer.status, body["code"], body["error"], body["errorCode"])
        assert expected_keys == set(answer.body)


class TestPlayFabReportErrorAsSuccess:
    @pytest.mark.parametrize("how, status, error, error_code", PLAYFAB_REFUSALS)
    def test_error_comes_as_http_200_with_the_real_status_in_code(self, strict_api, how, status, error, error_code):
        """With X-ReportErrorAsSuccess: true, an error is HTTP 200 and the same body, its code the real status."""
        plain = strict_api.event(**how)
        headers = {**how.get("headers", {}), "X-ReportErrorAsSuccess": "true"}

        wrapped = strict_api.event(**{**how, "headers": headers})

        assert (200, plain.body) == (wrapped.status, wrapped.body)
        assert (status, error_code) == (wrapped.body["code"], wrapped.body["errorCode"])

    def test_false_keeps_the_real_status(self, api):
        """X-ReportErrorAsSuccess: false changes nothing."""
        answer = api.event(headers={"X-SecretKey": None, "X-ReportErrorAsSuccess": "false"})

        assert 401 == answer.status

    def test_success_is_unchanged(self, api):
        """A good event with the header is the usual 200 envelope."""
        answer = api.event(headers={"X-ReportErrorAsSuccess": "true"})

        assert (200, 200, "OK") == (answer.status, answer.body["code"], answer.body["status"])

    def test_wrapped_error_is_still_a_rejection(self, api):
        """An error answered as HTTP 200 stores no event and is listed as rejected."""
        answer = api.event(changed(CHARACTER_EVENT, EventName="a b"), headers={"X-ReportErrorAsSuccess": "true"})

        assert [] == api.recorded("events")
        assert [{"path": EVENT, "status": 200, "reply": answer.body}] == api.recorded("rejected")


class TestPlayFabRecording:
    def test_events_are_listed_in_arrival_order_repeats_included(self, api):
        """PlayFab has no idempotency: each accepted event is listed, a repeat as often as it came."""
        first, second = CHARACTER_EVENT, changed(CHARACTER_EVENT, EventName="level_failed")

        for event in (first, second, first):
            assert 200 == api.event(event).status

        assert [first, second, first] == api.recorded("events")

    def test_rejections_are_listed_not_recorded(self, api):
        """Refused calls are in /_emulator/rejected, in order, with the status and reply sent."""
        bad_name = api.event(changed(CHARACTER_EVENT, EventName="a b"))
        no_key = api.event(headers={"X-SecretKey": None})
        api.event()

        expected = [
            {"path": EVENT, "status": 400, "reply": bad_name.body},
            {"path": EVENT, "status": 401, "reply": no_key.body},
        ]
        assert expected == api.recorded("rejected")
        assert [CHARACTER_EVENT] == api.recorded("events")

    def test_reset_forgets_events_and_rejections(self, api, default_emulator):
        """Emulator.reset() empties both lists."""
        api.event()
        api.event(headers={"X-SecretKey": None})

        default_emulator.reset()

        assert ([], []) == (api.recorded("events"), api.recorded("rejected"))


# -- routing ----------------------------------------------------------------------------------------


class TestRouting:
    @pytest.mark.parametrize(
        "path",
        [
            "/",
            "/v1/server/playtime/session",
            "/v1/server/playtime/sessions/",
            "/v1/server/playtime/sessions/bulk/more",
            "/Server/WriteCharacterEvent/",
            "/Server/WritePlayerEvent",
            "/Client/WriteCharacterEvent",
        ],
    )
    def test_unknown_path_is_not_found(self, api, path):
        """A POST to a path neither API has is 404 NOT_FOUND."""
        answer = api.request("POST", path, SESSION, headers={"Authorization": "Bearer " + ANY_KEY})

        assert (404, playcamp_error("NOT_FOUND")) == (answer.status, answer.body)

    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    @pytest.mark.parametrize("path", [SESSIONS, BULK, EVENT])
    def test_other_method_on_an_api_path_is_not_found(self, api, method, path):
        """The API paths answer POST only: any other method is 404."""
        assert 404 == api.request(method, path).status

    def test_unknown_inspection_route_is_not_found(self, api):
        """Under /_emulator/, an unknown name is 404."""
        assert 404 == api.request("GET", "/_emulator/secrets").status
