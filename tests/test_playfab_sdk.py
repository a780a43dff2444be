"""The official PlayFab Python SDK, an independent client, against the emulator on loopback.

The SDK builds its URL as ``ProductionEnvironmentURL + "/Server/WriteCharacterEvent?sdk=..."``
when that setting starts with ``http`` (``PlayFabSettings.GetURL``), so pointing it at
``emulator.url`` sends every call to 127.0.0.1. It keeps its settings in module globals: a fixture
sets them for each test and restores them after.
"""

import socket
from typing import Any, Iterator, List, Optional, Tuple

import pytest

from playfab import PlayFabErrors, PlayFabServerAPI, PlayFabSettings

from playhooks.emulator import Emulator

SECRET = "secret"
CHARACTER_EVENT = {"CharacterId": "C1", "EventName": "level_completed", "PlayFabId": "P1"}
LOOPBACK = ("127.0.0.1", "::1")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class Callback:
    """Records each ``(result, error)`` the SDK passes to it."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Optional[Any], Optional[Any]]] = []

    def __call__(self, result: Optional[Any], error: Optional[Any]) -> None:
        self.calls.append((result, error))


@pytest.fixture(scope="module")
def open_emulator() -> Iterator[Emulator]:
    with Emulator(playfab_secret_keys=[SECRET], characters={"P1": ["C1", "C2"], "P2": ["C3"]}) as emulator:
        yield emulator


@pytest.fixture
def connections(monkeypatch) -> List[Any]:
    """Every address a socket connects to during the test; anything but loopback is refused."""
    seen: List[Any] = []
    connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> Any:
        seen.append(address)
        if not (isinstance(address, tuple) and address[0] in LOOPBACK):
            raise AssertionError(f"a connection left loopback: {address!r}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    return seen


@pytest.fixture
def emulator(open_emulator, connections, monkeypatch) -> Emulator:
    """The emulator, reset, with the SDK's globals pointed at it (and restored after the test)."""
    open_emulator.reset()
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)  # requests would send loopback traffic to a proxy
    monkeypatch.setattr(PlayFabSettings, "ProductionEnvironmentURL", open_emulator.url)
    monkeypatch.setattr(PlayFabSettings, "VerticalName", None)
    monkeypatch.setattr(PlayFabSettings, "TitleId", "ABCD")
    monkeypatch.setattr(PlayFabSettings, "DeveloperSecretKey", SECRET)
    monkeypatch.setattr(PlayFabSettings, "GlobalErrorHandler", None)
    return open_emulator


def write(request: Any) -> Tuple[Optional[Any], Optional[Any]]:
    """Call WriteCharacterEvent through the SDK; the one ``(result, error)`` its callback got."""
    callback = Callback()

    PlayFabServerAPI.WriteCharacterEvent(request, callback)

    assert 1 == len(callback.calls)
    return callback.calls[0]


class TestSuccess:
    def test_good_event_gives_an_event_id(self, emulator):
        """The callback gets a result holding a non-empty ASCII EventId, and no error."""
        result, error = write(CHARACTER_EVENT)

        assert (None, ["EventId"]) == (error, list(result))
        assert isinstance(result["EventId"], str) and result["EventId"] and result["EventId"].isascii()

    def test_good_event_is_recorded(self, emulator):
        """The emulator recorded the event as the SDK sent it."""
        write(CHARACTER_EVENT)

        assert [CHARACTER_EVENT] == emulator.events

    def test_every_field_is_recorded(self, emulator):
        """Body, Timestamp and CustomTags pass through the SDK's encoding unchanged."""
        event = {
            **CHARACTER_EVENT,
            "Body": {"level": 3, "zone": "Forêt", "items": [1, None]},
            "Timestamp": "2024-01-15T10:30:00.000Z",
            "CustomTags": {"build": "1.2"},
        }

        result, error = write(event)

        assert (None, [event]) == (error, emulator.events)

    def test_sdk_request_is_as_documented(self, emulator):
        """The SDK posts to the path with its ?sdk= query, its headers and X-ReportErrorAsSuccess."""
        write(CHARACTER_EVENT)

        [request] = emulator.requests
        headers = {name.lower(): value for name, value in request["headers"].items()}
        expected = {
            "content-type": "application/json",
            "x-playfabsdk": "PythonSdk-0.0.201014",
            "x-reporterrorassuccess": "true",
            "x-secretkey": "<redacted>",
        }
        assert ("POST", "/Server/WriteCharacterEvent") == (request["method"], request["path"])
        assert expected == {name: headers.get(name) for name in expected}

    def test_sdk_url_is_the_emulators(self, emulator):
        """With an http:// ProductionEnvironmentURL the SDK uses it as the base, TitleId left out."""
        url = PlayFabSettings.GetURL("/Server/WriteCharacterEvent", PlayFabSettings._internalSettings.RequestGetParams)

        assert emulator.url + "/Server/WriteCharacterEvent?sdk=PythonSdk-0.0.201014" == url

    def test_traffic_stays_on_loopback(self, emulator, connections):
        """Every connection the SDK opened went to the emulator's port on 127.0.0.1."""
        write(CHARACTER_EVENT)

        port = int(emulator.url.rsplit(":", 1)[1])
        assert connections
        assert {("127.0.0.1", port)} == {tuple(address[:2]) for address in connections}


class TestErrors:
    @pytest.mark.parametrize(
        "request_, field",
        [
            pytest.param({**CHARACTER_EVENT, "EventName": "level completed"}, "EventName", id="EventName-space"),
            pytest.param({"EventName": "level_completed", "PlayFabId": "P1"}, "CharacterId", id="CharacterId-missing"),
            pytest.param({**CHARACTER_EVENT, "Body": ["not", "an", "object"]}, "Body", id="Body-array"),
            pytest.param({**CHARACTER_EVENT, "Timestamp": "2024-01-15T10:30:00Z"}, "Timestamp", id="Timestamp-format"),
        ],
    )
    def test_bad_field_gives_invalid_params(self, emulator, request_, field):
        """The error callback gets InvalidParams (1000) naming the field, no result, and nothing is recorded."""
        result, error = write(request_)

        assert (None, 400, "InvalidParams", 1000) == (result, error["code"], error["error"], error["errorCode"])
        assert [field] == list(error["errorDetails"])
        assert [] == emulator.events

    @pytest.mark.parametrize(
        "request_, error_name, error_code",
        [
            pytest.param({**CHARACTER_EVENT, "PlayFabId": "P9"}, "AccountNotFound", 1001, id="unknown-player"),
            pytest.param({**CHARACTER_EVENT, "CharacterId": "C9"}, "CharacterNotFound", 1135, id="unknown-character"),
            pytest.param({**CHARACTER_EVENT, "CharacterId": "C3"}, "CharacterNotFound", 1135, id="another-players"),
        ],
    )
    def test_unknown_player_or_character(self, emulator, request_, error_name, error_code):
        """The error callback gets the PlayFab error of the missing player or character."""
        result, error = write(request_)

        assert (None, error_name, error_code) == (result, error["error"], error["errorCode"])

    def test_wrong_secret_key_is_not_authorized(self, emulator, monkeypatch):
        """A secret key the emulator does not know gives NotAuthorized (1089), reported with code 401."""
        monkeypatch.setattr(PlayFabSettings, "DeveloperSecretKey", "not-" + SECRET)

        result, error = write(CHARACTER_EVENT)

        assert (None, 401, "NotAuthorized", 1089) == (result, error["code"], error["error"], error["errorCode"])
        assert [] == emulator.events

    def test_error_reaches_the_sdk_whole(self, emulator):
        """The SDK hands over the emulator's ApiErrorWrapper, which its own PlayFabError can read."""
        result, error = write({**CHARACTER_EVENT, "EventName": "a b"})

        parsed = PlayFabErrors.PlayFabError(error)
        assert (400, "BadRequest", "InvalidParams", 1000) == (
            parsed.HttpCode,
            parsed.HttpStatus,
            parsed.Error,
            parsed.ErrorCode,
        )

    def test_scripted_fault_keeps_its_http_status(self, emulator):
        """A scripted 503 is HTTP 503 despite X-ReportErrorAsSuccess: the SDK reports only the status."""
        emulator.fail_next(1, status=503, route="playfab")

        result, error = write(CHARACTER_EVENT)

        assert (None, 503) == (result, error.HttpCode)
        assert [] == emulator.events
