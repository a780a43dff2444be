"""The emulator as a test server: faults, rate limits, inspection, recording, concurrency, latency, the command."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import urllib3

from playhooks.emulator import Emulator

SESSIONS = "/v1/server/playtime/sessions"
EVENTS = "/Server/WriteCharacterEvent"
PLAYCAMP_HEADERS = {"Authorization": "Bearer key-1:secret-1", "Content-Type": "application/json"}
PLAYFAB_HEADERS = {"X-SecretKey": "title-secret", "Content-Type": "application/json"}


def session_body(session_id="s-1"):
    return {
        "sessionId": session_id,
        "userId": "player-1",
        "durationSeconds": 60,
        "startedAt": "2024-01-15T10:30:00.000Z",
        "endedAt": "2024-01-15T10:31:00.000Z",
    }


EVENT_BODY = {"CharacterId": "C1", "PlayFabId": "P1", "EventName": "level_completed", "Body": {"level": 2}}


@pytest.fixture(scope="module")
def http():
    with urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5)) as manager:
        yield manager


@pytest.fixture
def emulator():
    with Emulator() as emulator:
        yield emulator


def post(http, emulator, path, body, headers, **options):
    response = http.request("POST", emulator.url + path, body=json.dumps(body), headers=headers, **options)
    return response.status, response.headers, json.loads(response.data) if response.data else None


def post_session(http, emulator, session_id="s-1", **options):
    return post(http, emulator, SESSIONS, session_body(session_id), PLAYCAMP_HEADERS, **options)


def post_event(http, emulator, headers=PLAYFAB_HEADERS, **options):
    return post(http, emulator, EVENTS, EVENT_BODY, headers, **options)


class Background:
    """A request on a thread of its own, for one the emulator holds: its status, or the error it ended with."""

    def __init__(self, send):
        self.outcome = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send):
        try:
            self.outcome = send()[0]
        except Exception as error:  # the test reads it after join()
            self.outcome = error

    def join(self):
        self._thread.join(10)
        assert not self._thread.is_alive(), "the held request never ended"
        return self.outcome


def pool_manager():
    """A client of its own for a request on another thread, with a read timeout past any hold in these tests."""
    return urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=30))


def inspect(http, emulator, name):
    response = http.request("GET", f"{emulator.url}/_emulator/{name}")
    assert 200 == response.status
    return json.loads(response.data)[name]


class TestStatusFaults:
    def test_next_requests_get_the_scripted_status(self, http, emulator):
        """fail_next(2, 503) answers two requests with 503, then the service answers again."""
        emulator.fail_next(2, 503)

        statuses = [post_session(http, emulator, f"s-{n}")[0] for n in range(3)]

        assert [503, 503, 201] == statuses
        assert ["s-2"] == [session["sessionId"] for session in emulator.sessions]

    def test_fault_bodies_take_each_service_shape(self, http, emulator):
        """A PlayCamp fault has a PlayCamp error body, a PlayFab fault an ApiErrorWrapper."""
        emulator.fail_next(2, 503)

        _, _, playcamp = post_session(http, emulator)
        _, _, playfab = post_event(http, emulator)

        assert {"code": "INTERNAL_ERROR", "error": "scripted fault"} == playcamp
        assert {
            "code": 503,
            "status": "ServiceUnavailable",
            "error": "ServiceUnavailable",
            "errorCode": 1123,
            "errorMessage": "scripted fault",
        } == playfab

    def test_headers_and_body_can_be_scripted(self, http, emulator):
        """A fault can carry headers, such as Retry-After, and a body of the test's choosing."""
        emulator.fail_next(1, 429, headers={"Retry-After": "4"}, body={"error": "slow down"})

        status, headers, body = post_session(http, emulator)

        assert (429, "4", {"error": "slow down"}) == (status, headers["Retry-After"], body)

    def test_a_route_limits_the_fault(self, http, emulator):
        """A fault on the PlayFab route leaves PlayCamp alone, and the other way round."""
        emulator.fail_next(1, 500, route="playfab")
        emulator.fail_next(1, 502, route=SESSIONS)

        assert 502 == post_session(http, emulator)[0]
        assert 500 == post_event(http, emulator)[0]
        assert 201 == post_session(http, emulator, "s-2")[0]

    def test_faults_are_not_rejections(self, http, emulator):
        """What a fault answered is counted as a fault; nothing was recorded or rejected."""
        emulator.fail_next(1, 503)
        post_session(http, emulator)

        assert (1, 0, []) == (emulator.counters["faults"], emulator.counters["rejected"], emulator.sessions)


class TestNetworkFaults:
    def test_drop_closes_the_connection_without_an_answer(self, http, emulator):
        """drop_next cuts the connection; the client sees a protocol error, and the next request works."""
        emulator.drop_next(1)

        with pytest.raises(urllib3.exceptions.ProtocolError):
            post_session(http, emulator)
        assert 201 == post_session(http, emulator)[0]

    def test_hang_outlasts_the_client_timeout(self, http, emulator):
        """hang_next never answers: the client's read timeout fires, and stopping releases the hang."""
        emulator.hang_next(1)

        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            post_session(http, emulator, timeout=urllib3.Timeout(connect=2, read=0.2))
        assert [] == emulator.sessions

    def test_delay_answers_late_but_normally(self, http, emulator):
        """delay_next holds the answer for its seconds, then records and answers as usual."""
        emulator.delay_next(1, seconds=0.3)

        started = time.monotonic()
        status, _, body = post_session(http, emulator)

        assert time.monotonic() - started >= 0.3
        assert (201, True) == (status, body["data"]["recorded"])

    @pytest.mark.parametrize("hold", ["hang", "delay"])
    def test_a_held_playcamp_request_does_not_delay_playfab(self, http, emulator, hold):
        """While a PlayCamp request is hung (or delayed), a PlayFab request on another connection is answered at once."""
        if hold == "hang":
            emulator.hang_next(1, route="playcamp")
        else:
            emulator.delay_next(1, seconds=60, route="playcamp")
        with pool_manager() as other:
            held = Background(lambda: post_session(other, emulator))
            assert emulator.wait_until(lambda e: e.in_flight["playcamp"] == 1, 10)

            status, _, _ = post_event(http, emulator, timeout=urllib3.Timeout(connect=2, read=5))
            still_held = emulator.in_flight
            emulator.stop()  # releases the held request
            held.join()

        assert (200, {"playcamp": 1, "playfab": 0}) == (status, still_held)

    def test_a_fault_on_one_route_leaves_the_other_route_alone(self, http, emulator):
        """hang_next(route=...) holds the next request on that route only: the other route's requests pass it by."""
        emulator.hang_next(1, route="playfab")

        assert (201, 201) == (post_session(http, emulator)[0], post_session(http, emulator, "s-2")[0])
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            post_event(http, emulator, timeout=urllib3.Timeout(connect=2, read=0.2))

    def test_random_faults_repeat_with_the_seed(self, http):
        """The same seed gives the same faults on the same requests."""

        def outcomes():
            with Emulator(fault_rate=0.5, seed=7) as emulator:
                results = []
                for number in range(20):
                    try:
                        results.append(post_session(http, emulator, f"s-{number}")[0])
                    except urllib3.exceptions.ProtocolError:
                        results.append("dropped")
                return results

        first, second = outcomes(), outcomes()

        assert first == second
        assert {201} < set(first)


class TestRateLimits:
    def test_playcamp_answers_429_with_retry_after(self, http):
        """Past the limit per key, PlayCamp answers 429 RATE_LIMITED and says when to come back."""
        with Emulator(rate_limit=2, rate_window=60) as emulator:
            statuses = [post_session(http, emulator, f"s-{n}")[0] for n in range(2)]
            status, headers, body = post_session(http, emulator, "s-3")

        assert [201, 201] == statuses
        assert (429, "RATE_LIMITED") == (status, body["code"])
        assert 1 <= int(headers["Retry-After"]) <= 60

    def test_playfab_answers_1199_with_retry_after_seconds(self, http):
        """PlayFab's throttling body carries retryAfterSeconds, and the header agrees."""
        with Emulator(rate_limit=1, rate_window=60) as emulator:
            post_event(http, emulator)
            status, headers, body = post_event(http, emulator)

        assert (429, "APIClientRequestRateLimitExceeded", 1199) == (status, body["error"], body["errorCode"])
        assert str(body["retryAfterSeconds"]) == headers["Retry-After"]

    def test_limits_are_per_key(self, http):
        """Another key has its own allowance."""
        other = dict(PLAYCAMP_HEADERS, Authorization="Bearer key-2:secret-2")
        with Emulator(rate_limit=1, rate_window=60) as emulator:
            first = post_session(http, emulator, "s-1")[0]
            second = post(http, emulator, SESSIONS, session_body("s-2"), other)[0]

        assert (201, 201) == (first, second)

    def test_inspection_is_never_limited_or_faulted(self, http):
        """The /_emulator/ paths answer whatever faults and limits are in place."""
        with Emulator(rate_limit=1, rate_window=60) as emulator:
            emulator.fail_next(5, 503)
            for _ in range(3):
                inspect(http, emulator, "counters")
            statuses = [post_session(http, emulator, f"s-{n}")[0] for n in range(5)]

            assert [503] * 5 == statuses
            assert {"faults": 5, "rateLimited": 0} == {key: inspect(http, emulator, "counters")[key] for key in ("faults", "rateLimited")}


class TestInspection:
    def test_requests_are_logged_without_secrets(self, http, emulator):
        """The request log keeps headers but never the keys."""
        post_session(http, emulator)
        post_event(http, emulator)

        logged = inspect(http, emulator, "requests")

        assert [SESSIONS, EVENTS] == [request["path"] for request in logged]
        assert "<redacted>" == logged[0]["headers"]["Authorization"]
        assert "<redacted>" == logged[1]["headers"]["X-Secretkey"]
        assert "secret" not in json.dumps(logged)

    def test_counters(self, http, emulator):
        """Counters add up what happened."""
        post_session(http, emulator)
        post_session(http, emulator)
        post_event(http, emulator)
        post_event(http, emulator, headers={})

        assert {
            "requests": 4,
            "sessions": 1,
            "duplicates": 1,
            "events": 1,
            "rejected": 1,
            "rateLimited": 0,
            "faults": 0,
        } == inspect(http, emulator, "counters")

    def test_reset_forgets_everything(self, http, emulator):
        """POST /_emulator/reset clears records and scripted faults."""
        post_session(http, emulator)
        emulator.fail_next(3, 503)
        http.request("POST", emulator.url + "/_emulator/reset")

        assert ([], 201) == (inspect(http, emulator, "sessions"), post_session(http, emulator)[0])

    def test_faults_can_be_scripted_over_http(self, http, emulator):
        """POST /_emulator/faults takes a fault as JSON, for an emulator in another process."""
        fault = {"kind": "status", "count": 1, "status": 500, "route": "playcamp"}
        response = http.request("POST", emulator.url + "/_emulator/faults", body=json.dumps(fault))

        assert 200 == response.status
        assert (500, 200) == (post_session(http, emulator)[0], post_event(http, emulator)[0])

    def test_a_bad_fault_is_refused(self, http, emulator):
        """An unknown fault kind gets a 400 that says what is wrong."""
        response = http.request("POST", emulator.url + "/_emulator/faults", body=json.dumps({"kind": "explode"}))

        assert 400 == response.status
        assert "kind: must be one of" in json.loads(response.data)["error"]


class TestRecording:
    def test_accepted_payloads_are_appended_to_the_record(self, http, tmp_path):
        """--record keeps every accepted payload as a JSON line, duplicates and rejections left out."""
        record = tmp_path / "record.jsonl"
        with Emulator(record=str(record)) as emulator:
            post_session(http, emulator)
            post_session(http, emulator)
            post_event(http, emulator)
            post_event(http, emulator, headers={})

        lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
        assert [("session", session_body()), ("event", EVENT_BODY)] == [(line["kind"], line["payload"]) for line in lines]

    def test_a_record_that_cannot_be_written_fails_at_start(self, tmp_path):
        """A record in a folder that cannot exist (its parent is a file) is an OSError at start, not a 500 per request."""
        (tmp_path / "file").write_text("")
        emulator = Emulator(record=str(tmp_path / "file" / "record.jsonl"))

        with pytest.raises(OSError):
            emulator.start()
        with pytest.raises(RuntimeError):
            emulator.url

    def test_a_full_disk_is_logged_once_and_the_answers_stand(self, http, caplog):
        """Once a payload is stored, a record that cannot be written (/dev/full) does not turn it into a 500."""
        if not os.path.exists("/dev/full"):
            pytest.skip("needs /dev/full")
        with caplog.at_level(logging.ERROR, logger="playhooks"), Emulator(record="/dev/full") as emulator:
            statuses = [post_session(http, emulator, f"s-{n}")[0] for n in range(2)] + [post_event(http, emulator)[0]]

        assert ([201, 201, 200], 2) == (statuses, len(emulator.sessions))
        assert 1 == sum("record" in message for message in caplog.messages)


class TestConcurrency:
    def test_many_clients_at_once(self, emulator):
        """Eight clients posting together: every session and event is recorded exactly once."""
        errors = []

        def client(number):
            try:
                with urllib3.PoolManager(retries=False, timeout=5) as manager:
                    for index in range(25):
                        assert 201 == post_session(manager, emulator, f"c{number}-s{index}")[0]
                        assert 200 == post_event(manager, emulator)[0]
            except Exception as error:  # surfaced below, on the test's thread
                errors.append(error)

        threads = [threading.Thread(target=client, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [] == errors
        assert (200, 200) == (len(emulator.sessions), len(emulator.events))

    def test_connections_are_kept_alive(self, http, emulator):
        """Consecutive requests reuse one connection (HTTP/1.1 keep-alive), as a client pool expects."""
        with urllib3.HTTPConnectionPool("127.0.0.1", int(emulator.url.rsplit(":", 1)[1]), maxsize=1) as pool:
            for number in range(5):
                pool.request("POST", SESSIONS, body=json.dumps(session_body(f"s-{number}")), headers=PLAYCAMP_HEADERS)

            assert 1 == pool.num_connections


    def test_a_client_that_asks_to_close_is_told_so(self, http, emulator):
        """HTTP/1.1: the answer to `Connection: close` says it closes, so a pool does not reuse it."""
        headers = dict(PLAYCAMP_HEADERS, Connection="close")
        first = http.request("POST", emulator.url + SESSIONS, body=json.dumps(session_body("s-1")), headers=headers)
        second = http.request("POST", emulator.url + SESSIONS, body=json.dumps(session_body("s-2")), headers=headers)

        assert ("close", 201, 201) == (first.headers["Connection"], first.status, second.status)


class TestInFlight:
    def test_requests_one_at_a_time_are_one_in_flight(self, http, emulator):
        """A client that waits for each answer never has more than one request in flight."""
        for number in range(3):
            post_session(http, emulator, f"s-{number}")
            post_event(http, emulator)

        assert ({"playcamp": 1, "playfab": 1}, {"playcamp": 0, "playfab": 0}) == (emulator.max_in_flight, emulator.in_flight)

    def test_held_requests_count_while_held(self, emulator):
        """Three PlayFab requests a hang holds are three in flight, for PlayFab alone, until they end."""
        emulator.hang_next(3, route="playfab")
        with pool_manager() as other:
            held = [Background(lambda: post_event(other, emulator)) for _ in range(3)]
            assert emulator.wait_until(lambda e: e.in_flight["playfab"] == 3, 10)
            while_held = emulator.max_in_flight
            emulator.stop()
            for request in held:
                request.join()

        assert {"playcamp": 0, "playfab": 3} == while_held
        assert ({"playcamp": 0, "playfab": 0}, {"playcamp": 0, "playfab": 3}) == (emulator.in_flight, emulator.max_in_flight)

    def test_both_playcamp_routes_count_as_playcamp(self, emulator):
        """A held single-session request and a held bulk request are two PlayCamp requests in flight."""
        emulator.hang_next(2, route="playcamp")
        bulk = {"sessions": [session_body("s-2")]}
        with pool_manager() as other:
            held = [
                Background(lambda: post_session(other, emulator)),
                Background(lambda: post(other, emulator, SESSIONS + "/bulk", bulk, PLAYCAMP_HEADERS)),
            ]
            assert emulator.wait_until(lambda e: e.in_flight == {"playcamp": 2, "playfab": 0}, 10)
            emulator.stop()
            for request in held:
                request.join()

        assert {"playcamp": 2, "playfab": 0} == emulator.max_in_flight

    def test_unknown_routes_and_inspection_are_not_counted(self, http, emulator):
        """Only requests to the services' routes count: not a 404, not an inspection query."""
        assert 404 == post(http, emulator, "/v1/elsewhere", {}, PLAYCAMP_HEADERS)[0]
        inspect(http, emulator, "counters")

        assert {"playcamp": 0, "playfab": 0} == emulator.max_in_flight

    def test_reset_starts_again_from_the_requests_in_flight(self, http, emulator):
        """After a reset, the most in flight is what was in flight then, and it grows from there."""
        post_session(http, emulator)
        emulator.hang_next(1, route="playfab")
        with pool_manager() as other:
            held = Background(lambda: post_event(other, emulator))
            assert emulator.wait_until(lambda e: e.in_flight["playfab"] == 1, 10)
            emulator.reset()
            after_reset = emulator.max_in_flight
            emulator.stop()
            held.join()

        assert {"playcamp": 0, "playfab": 1} == after_reset

    def test_inspection_over_http(self, http, emulator):
        """GET /_emulator/in_flight and /_emulator/max_in_flight answer as the properties do."""
        post_event(http, emulator)

        assert {"playcamp": 0, "playfab": 0} == inspect(http, emulator, "in_flight")
        assert {"playcamp": 0, "playfab": 1} == inspect(http, emulator, "max_in_flight")

    def test_eight_clients_at_once_are_at_most_eight_in_flight(self):
        """Eight clients held together by the latency are eight in flight; never more than there are clients."""
        with Emulator(latency=0.5) as emulator:
            with urllib3.PoolManager(maxsize=8, retries=False, timeout=urllib3.Timeout(connect=2, read=30)) as pool:
                requests = [Background(lambda: post_event(pool, emulator)) for _ in range(8)]
                assert emulator.wait_until(lambda e: e.in_flight["playfab"] == 8, 10)
                statuses = [request.join() for request in requests]

            assert ([200] * 8, {"playcamp": 0, "playfab": 8}) == (statuses, emulator.max_in_flight)


class TestLatency:
    def test_each_api_request_waits_the_latency(self, http):
        """Emulator(latency=0.3) answers each API request normally, no sooner than 0.3 s after it arrives."""
        with Emulator(latency=0.3) as emulator:
            started = time.monotonic()
            status, _, _ = post_event(http, emulator)
            took = time.monotonic() - started

        assert 200 == status
        assert took >= 0.3

    def test_the_latency_holds_no_other_connection(self, http):
        """A request waiting out the latency does not hold up a request on another connection: both wait at once."""
        with Emulator(latency=1.0) as emulator:
            with pool_manager() as other:
                first = Background(lambda: post_session(other, emulator))
                assert emulator.wait_until(lambda e: e.in_flight["playcamp"] == 1, 10)
                started = time.monotonic()
                status, _, _ = post_event(http, emulator, timeout=urllib3.Timeout(connect=2, read=30))
                took = time.monotonic() - started

                assert (200, 201) == (status, first.join())
            assert {"playcamp": 1, "playfab": 1} == emulator.max_in_flight
        assert took < 1.9  # after the first, in turn, it would take two latencies

    def test_inspection_is_not_delayed(self, http):
        """Inspection queries answer at once, whatever the latency (here longer than the client's read timeout)."""
        with Emulator(latency=60) as emulator:
            assert {"playcamp": 0, "playfab": 0} == inspect(http, emulator, "in_flight")

    def test_stopping_releases_requests_waiting_out_the_latency(self):
        """stop() does not wait for a long latency to pass."""
        emulator = Emulator(latency=60).start()
        with pool_manager() as other:
            waiting = Background(lambda: post_event(other, emulator))
            assert emulator.wait_until(lambda e: e.in_flight["playfab"] == 1, 10)
            started = time.monotonic()
            emulator.stop()
            waiting.join()

        assert time.monotonic() - started < 5


class TestServer:
    def test_a_stopped_emulator_answers_no_kept_alive_connection(self, http):
        """After stop(), a pooled connection gets no answer: a stopped server is really down."""
        emulator = Emulator().start()
        assert 201 == post_session(http, emulator)[0]
        emulator.stop()

        with pytest.raises(urllib3.exceptions.HTTPError):
            http.request("POST", emulator._server_url + SESSIONS, body=b"{}", headers=PLAYCAMP_HEADERS, retries=False)
        assert 1 == len(emulator.sessions)

    def test_a_chunked_body_is_refused_and_the_connection_closed(self, emulator):
        """Bodies need a Content-Length: a chunked one gets 501 (not implemented), never parsed as a second request."""
        with urllib3.HTTPConnectionPool("127.0.0.1", int(emulator.url.rsplit(":", 1)[1]), retries=False) as pool:
            response = pool.request(
                "POST", SESSIONS, body=iter([json.dumps(session_body()).encode()]), headers=PLAYCAMP_HEADERS, chunked=True
            )

        assert (501, []) == (response.status, emulator.sessions)

    def test_a_body_too_large_closes_the_connection(self, http, emulator):
        """The 413 leaves the body unread, so the connection closes rather than read it as a request."""
        body = b"{" + b" " * (9 * 1024 * 1024) + b"}"
        response = http.request("POST", emulator.url + SESSIONS, body=body, headers=PLAYCAMP_HEADERS)

        assert (413, "close") == (response.status, response.headers["Connection"])
        assert 201 == post_session(http, emulator)[0]

    @pytest.mark.parametrize(
        "fault",
        [
            {"kind": "status", "status": 520},
            {"kind": "delay", "seconds": "1"},
            {"kind": "status", "headers": ["a"]},
            {"kind": "status", "headers": {"Retry-After": "4\r\nX-Injected: 1"}},
            {"kind": "status", "headers": {"X-Note": "caf\u20ac"}},
            {"kind": "status", "headers": {"Bad Name": "1"}},
            {"kind": "status", "headers": {"Content-Length": "0"}},
            {"kind": "status", "headers": {"Connection": "keep-alive"}},
            [1],
        ],
        ids=[
            "unknown-status",
            "seconds-not-a-number",
            "headers-not-a-mapping",
            "header-value-with-a-line-break",
            "header-value-outside-latin-1",
            "header-name-with-a-space",
            "content-length-header",
            "hop-by-hop-header",
            "not-an-object",
        ],
    )
    def test_a_bad_fault_is_refused_when_scripted(self, http, emulator, fault):
        """A fault that could not be carried out is a 400 at once, not a 500 at the next request."""
        response = http.request("POST", emulator.url + "/_emulator/faults", body=json.dumps(fault))

        assert 400 == response.status
        assert 201 == post_session(http, emulator)[0]


class TestHostileBodies:
    @pytest.mark.parametrize(
        "path, headers, expected",
        [
            (
                SESSIONS,
                PLAYCAMP_HEADERS,
                {"code": "VALIDATION_ERROR", "error": "Validation Error", "details": [{"message": "the body must be JSON", "path": "$", "target": "body"}]},
            ),
            (
                "/v1/server/playtime/sessions/bulk",
                PLAYCAMP_HEADERS,
                {"code": "VALIDATION_ERROR", "error": "Validation Error", "details": [{"message": "the body must be JSON", "path": "$", "target": "body"}]},
            ),
            (
                EVENTS,
                PLAYFAB_HEADERS,
                {"code": 400, "status": "BadRequest", "error": "InvalidRequest", "errorCode": 1071, "errorMessage": "The request body is not a JSON object"},
            ),
        ],
        ids=["playcamp-session", "playcamp-bulk", "playfab-event"],
    )
    def test_deeply_nested_json_is_a_400_in_the_service_shape(self, http, emulator, path, headers, expected):
        """100,000 nested arrays are a body that is not JSON to accept, answered as the service answers one."""
        response = http.request("POST", emulator.url + path, body=b"[" * 100_000, headers=headers)

        assert (400, expected) == (response.status, json.loads(response.data))

    def test_deeply_nested_json_is_a_bad_fault(self, http, emulator):
        """The inspection API refuses it too, with its own error shape."""
        response = http.request("POST", emulator.url + "/_emulator/faults", body=b"[" * 100_000)

        assert 400 == response.status
        assert "bad fault" in json.loads(response.data)["error"]

    def test_a_get_with_a_body_is_answered_and_the_connection_kept(self, emulator):
        """A body on an inspection GET is read and ignored; the next request on the connection is served."""
        with urllib3.HTTPConnectionPool("127.0.0.1", int(emulator.url.rsplit(":", 1)[1]), maxsize=1, retries=False) as pool:
            first = pool.request("GET", "/_emulator/counters", body=b"POST /smuggled HTTP/1.1\r\n\r\n")
            second = pool.request("GET", "/_emulator/requests")

        assert (200, 200, [], 1) == (first.status, second.status, json.loads(second.data)["requests"], pool.num_connections)


class TestSettings:
    @pytest.mark.parametrize(
        "settings",
        [
            {"rate_limit": 0},
            {"rate_limit": -1},
            {"rate_window": 0},
            {"fault_rate": 2},
            {"latency": -0.1},
            {"latency": float("nan")},
            {"latency": float("inf")},
            {"latency": True},
            {"latency": "0.1"},
        ],
        ids=str,
    )
    def test_impossible_settings_are_refused_at_construction(self, settings):
        """A limit that could only refuse everything (or nothing, silently) is a ValueError, not a 500 per request."""
        options = {"rate_limit": 1, **settings}

        with pytest.raises(ValueError):
            Emulator(**options)


class TestCommand:
    def test_emulate_prints_its_url_and_stops_on_sigterm(self, http, tmp_path):
        """`playhooks emulate --port 0` prints the URL, the live page's, a line per request, and exits 0 on SIGTERM."""
        record = tmp_path / "record.jsonl"
        command = [sys.executable, "-m", "playhooks", "emulate", "--port", "0", "--record", str(record)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
            try:
                url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
                response = http.request("POST", url + SESSIONS, body=json.dumps(session_body()), headers=PLAYCAMP_HEADERS)
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=10)
                rest = process.stdout.read()
            finally:
                if process.poll() is None:
                    process.kill()

        assert url.startswith("http://127.0.0.1:")
        assert (201, 0) == (response.status, code)
        assert [f"live page: {url}/_emulator/", "POST /v1/server/playtime/sessions 201 accepted"] == rest.splitlines()
        assert 1 == len(record.read_text(encoding="utf-8").splitlines())

    def test_emulate_adds_the_latency_asked_for(self, http):
        """`--latency 0.3` delays each API request by 0.3 s."""
        command = [sys.executable, "-m", "playhooks", "emulate", "--port", "0", "--latency", "0.3"]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
            try:
                url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
                started = time.monotonic()
                response = http.request("POST", url + EVENTS, body=json.dumps(EVENT_BODY), headers=PLAYFAB_HEADERS)
                took = time.monotonic() - started
            finally:
                process.terminate()
                process.wait(timeout=10)

        assert 200 == response.status
        assert took >= 0.3

    @pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon", "1e12"])
    def test_a_bad_latency_is_one_line_naming_the_flag_and_status_2(self, value):
        """--latency takes seconds, 0 or more; anything else is refused before serving, as the other flags are."""
        result = subprocess.run(
            [sys.executable, "-m", "playhooks", "emulate", "--port", "0", "--latency", value], capture_output=True, text=True, timeout=30
        )

        assert (2, "") == (result.returncode, result.stdout)
        assert [f"playhooks emulate: error: argument --latency: must be a number of seconds, 0 or more (got {value!r})"] == (
            result.stderr.splitlines()
        )

    def test_emulate_says_when_the_port_is_taken(self, emulator):
        """A port in use is a one-line error and exit code 1, not a traceback."""
        port = emulator.url.rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "playhooks", "emulate", "--port", port],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(os.environ),
        )

        assert 1 == result.returncode
        assert result.stderr.startswith("playhooks emulate: ")
