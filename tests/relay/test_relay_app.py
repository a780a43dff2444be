"""The relay's application, served by waitress: what it takes, forwards, refuses and counts."""

import json
import logging
import math
import os
import shutil
import time

import pytest

from helpers import wait_for
from redis_server import RedisServer, skip_unless_available
from relay_support import (
    BULK,
    EVENT,
    EVENTS_ONLY_KEY,
    INGEST_KEY,
    SECRETS,
    SESSIONS,
    accepted,
    event,
    get,
    metrics,
    now_text,
    post,
    rejected,
    session,
    write_config,
)

class TestAccepting:
    def test_a_session_is_stored_answered_202_and_forwarded_as_sent_with_the_relays_secret(self, make_relay, emulator):
        """The emulator takes only the relay's PlayCamp key: the session arrives exactly as the game sent it."""
        relay = make_relay()
        sent = session(metadata={"level": 3}, platform="Other")
        answer = post(relay.url, SESSIONS, sent)
        assert answer.status == 202
        assert answer.json_body["data"]["sessionId"] == sent["sessionId"]
        assert emulator.wait_until(lambda e: len(e.sessions) == 1, 10)
        assert emulator.sessions == [sent]
        assert accepted(metrics(relay.url), "playcamp") == 1

    def test_an_event_is_answered_with_its_id_and_forwarded_as_sent(self, make_relay, emulator):
        """PlayFab's success shape, with the client's own event id."""
        relay = make_relay()
        sent = event()
        answer = post(relay.url, EVENT, sent)
        assert answer.status == 200
        assert answer.json_body == {"code": 200, "status": "OK", "data": {"EventId": sent["Body"]["playhooks_event_id"]}}
        assert emulator.wait_until(lambda e: len(e.events) == 1, 10)
        assert emulator.events == [sent]

    def test_a_bulk_request_answers_each_session_and_forwards_only_the_valid_ones(self, make_relay, emulator):
        """An invalid session fails alone, as PlayCamp's bulk endpoint does; the rest are kept."""
        relay = make_relay()
        good = [session(user=f"player-{number}") for number in range(3)]
        bad = session(durationSeconds=0)
        answer = post(relay.url, BULK, {"sessions": [good[0], bad, good[1], good[2]]})
        assert answer.status == 200
        data = answer.json_body["data"]
        assert (data["totalRequested"], data["successful"], data["failed"]) == (4, 3, 1)
        assert [result["status"] for result in data["results"]] == ["SUCCESS", "FAILED", "SUCCESS", "SUCCESS"]
        assert data["results"][1]["error"].startswith("durationSeconds")
        assert emulator.wait_until(lambda e: len(e.sessions) == 3, 10)
        assert sorted(s["sessionId"] for s in emulator.sessions) == sorted(s["sessionId"] for s in good)
        assert rejected(metrics(relay.url), "invalid") == 1

    def test_a_payload_sent_again_after_a_lost_answer_is_stored_once(self, make_relay, emulator):
        """A game retries when an answer is lost: the relay answers again without storing twice."""
        relay = make_relay()
        sent = event()
        assert post(relay.url, EVENT, sent).status == 200
        assert post(relay.url, EVENT, sent).status == 200
        assert emulator.wait_until(lambda e: len(e.events) == 1, 10)
        assert accepted(metrics(relay.url), "playfab") == 1


class TestIngestKeys:
    @pytest.mark.parametrize("path, body", [(SESSIONS, session()), (EVENT, event())])
    def test_a_missing_key_is_401_with_a_challenge(self, make_relay, emulator, path, body):
        relay = make_relay()
        answer = post(relay.url, path, body, key=None)
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        service = "playfab" if path == EVENT else "playcamp"
        assert rejected(metrics(relay.url), "unauthorized", service) == 1

    def test_an_unknown_key_is_401_in_each_services_shape(self, make_relay, emulator):
        """PlayCamp's {code, error}; PlayFab's {code, status, error, errorCode, errorMessage}."""
        relay = make_relay()
        playcamp = post(relay.url, SESSIONS, session(), key="ik_not_a_key_at_all")
        playfab = post(relay.url, EVENT, event(), key="ik_not_a_key_at_all")
        assert (playcamp.status, playfab.status) == (401, 401)
        assert 'error="invalid_token"' in playcamp.headers["WWW-Authenticate"]
        assert playcamp.json_body["code"] == "UNAUTHORIZED"
        assert playfab.json_body["code"] == 401 and playfab.json_body["errorCode"] == 1074

    def test_a_revoked_key_is_refused_after_a_reload_without_a_restart(self, make_relay, emulator, tmp_path):
        relay = make_relay()
        assert post(relay.url, SESSIONS, session()).status == 202
        write_config(tmp_path / "relay.toml", emulator.url, keys=[(EVENTS_ONLY_KEY, ["playfab"])])
        assert relay.reload()
        assert post(relay.url, SESSIONS, session()).status == 401
        assert post(relay.url, EVENT, event(), key=EVENTS_ONLY_KEY).status == 200

    def test_an_edited_config_file_is_read_again_by_itself(self, make_relay, emulator, tmp_path):
        """The watcher notices the file changed: revoking a key needs no signal either."""
        relay = make_relay()
        write_config(tmp_path / "relay.toml", emulator.url, keys=[(EVENTS_ONLY_KEY, ["playfab"])])
        assert wait_for(lambda: relay.config.key(INGEST_KEY) is None, 10)
        assert post(relay.url, SESSIONS, session()).status == 401

    def test_a_broken_config_on_reload_keeps_the_current_one(self, make_relay, emulator, tmp_path, caplog):
        relay = make_relay()
        (tmp_path / "relay.toml").write_text("[playcamp\n")
        assert not relay.reload()
        assert post(relay.url, SESSIONS, session()).status == 202
        assert metrics(relay.url)[("playhooks_relay_config_reloads_total", ("result", "failed"))] == 1

    def test_a_service_added_by_a_reload_waits_for_a_restart(self, make_relay, emulator, tmp_path):
        """The running relay forwards to the services it started with: a key for a new one is 403, not a 500."""
        relay = make_relay(upstreams=("playcamp",), keys=[(INGEST_KEY, ["playcamp"])])
        write_config(tmp_path / "relay.toml", emulator.url)  # PlayFab added, and the key allowed it
        assert relay.reload()
        assert post(relay.url, EVENT, event()).status == 403
        assert post(relay.url, SESSIONS, session()).status == 202

    def test_a_key_on_a_service_it_is_not_allowed_is_403(self, make_relay, emulator):
        relay = make_relay()
        answer = post(relay.url, SESSIONS, session(), key=EVENTS_ONLY_KEY)
        assert answer.status == 403
        assert answer.json_body["code"] == "FORBIDDEN"
        assert rejected(metrics(relay.url), "forbidden") == 1


class TestLimits:
    def test_an_oversized_body_is_413(self, make_relay, emulator):
        relay = make_relay(limits="max_body_bytes = 2048")
        answer = post(relay.url, SESSIONS, session(metadata={"padding": "x" * 4000}))
        assert answer.status == 413
        assert rejected(metrics(relay.url), "too_large") == 1

    def test_a_wrong_content_type_is_415(self, make_relay, emulator):
        relay = make_relay()
        answer = post(relay.url, EVENT, event(), content_type="text/plain")
        assert answer.status == 415
        assert answer.json_body["errorCode"] == 1144
        assert rejected(metrics(relay.url), "unsupported_media_type", "playfab") == 1

    @pytest.mark.parametrize("raw", [b"{not json", b"[1, 2", b'{"a": NaN}', b"\xff\xfe\x00"])
    def test_malformed_json_is_400(self, make_relay, emulator, raw):
        relay = make_relay()
        answer = post(relay.url, SESSIONS, raw)
        assert answer.status == 400
        assert answer.json_body["code"] == "VALIDATION_ERROR"
        assert rejected(metrics(relay.url), "malformed_json") == 1

    def test_a_payload_that_breaks_the_services_rules_is_400_naming_the_field(self, make_relay, emulator):
        relay = make_relay()
        answer = post(relay.url, EVENT, event(EventName="has spaces"))
        assert answer.status == 400
        assert answer.json_body["errorCode"] == 1000
        assert list(answer.json_body["errorDetails"]) == ["EventName"]

    def test_requests_past_the_keys_rate_are_429_with_whole_seconds_to_wait(self, make_relay, emulator):
        """Fixed one-second windows: ten requests at once cross at most one boundary, so some are refused."""
        relay = make_relay(limits="requests_per_second_per_key = 3")
        answers = [post(relay.url, SESSIONS, session(user=f"player-{number}")) for number in range(10)]
        refused = [answer for answer in answers if answer.status == 429]
        assert refused and all(answer.status in (202, 429) for answer in answers)
        assert all(answer.headers["Retry-After"].isdigit() and int(answer.headers["Retry-After"]) >= 1 for answer in refused)
        assert rejected(metrics(relay.url), "rate_limited_key") == len(refused)
        assert emulator.wait_until(lambda e: len(e.sessions) == 10 - len(refused), 10)

    def test_requests_past_a_players_rate_are_429_and_other_players_go_on(self, make_relay, emulator):
        relay = make_relay(limits="requests_per_second_per_player = 2")
        answers = [post(relay.url, EVENT, event()) for _ in range(7)]
        refused = [answer for answer in answers if answer.status == 429]
        assert refused
        assert refused[0].json_body["errorCode"] == 1199
        assert refused[0].json_body["retryAfterSeconds"] == int(refused[0].headers["Retry-After"]) >= 1
        assert post(relay.url, EVENT, event(playfab_id="0000000000000001")).status == 200
        assert rejected(metrics(relay.url), "rate_limited_player", "playfab") == len(refused)

    @pytest.mark.parametrize(
        "fields, field",
        [
            ({"durationSeconds": 7200, "startedAt": "now-7200"}, "durationSeconds"),
            ({"endedAt": "now+3600"}, "endedAt"),
            ({"startedAt": "now-1000000", "endedAt": "now-999970"}, "startedAt"),
            ({"durationSeconds": 600}, "durationSeconds"),  # more active time than the 30 s from start to end
        ],
    )
    def test_implausible_sessions_are_400_and_not_forwarded(self, make_relay, emulator, fields, field):
        relay = make_relay(limits="max_session_seconds = 3600\nmax_session_age_seconds = 86400")
        sent = session(**{key: now_text(float(value[3:])) if isinstance(value, str) else value for key, value in fields.items()})
        answer = post(relay.url, SESSIONS, sent)
        assert answer.status == 400
        assert answer.json_body["details"][0]["path"] == field
        assert rejected(metrics(relay.url), "implausible") == 1

    def test_ids_that_do_not_match_the_configured_pattern_are_400(self, make_relay, emulator):
        relay = make_relay(limits='user_id_pattern = "p-[0-9]+"')
        assert post(relay.url, SESSIONS, session(user="p-17")).status == 202
        answer = post(relay.url, SESSIONS, session(user="player-1"))
        assert answer.status == 400 and answer.json_body["details"][0]["path"] == "userId"
        assert rejected(metrics(relay.url), "invalid_id") == 1

    def test_a_full_spool_is_503_and_nothing_is_acknowledged(self, make_relay, emulator):
        emulator.hang_next(50, route="playcamp", seconds=30)  # nothing leaves, so the spool fills
        relay = make_relay(extra="\n[spool]\nmax_records = 2\n")
        answers = [post(relay.url, SESSIONS, session(user=f"player-{number}")) for number in range(4)]
        assert [answer.status for answer in answers][:2] == [202, 202]
        assert answers[3].status == 503
        assert answers[3].headers["Retry-After"].isdigit()
        values = metrics(relay.url)
        assert accepted(values, "playcamp") == 2
        assert rejected(values, "unavailable") == sum(answer.status == 503 for answer in answers)

    def test_an_unwritable_spool_is_503_and_not_ready(self, make_relay, emulator, tmp_path):
        relay = make_relay()
        temporary = os.path.join(relay.store.queue.directory, "tmp")
        shutil.rmtree(temporary)
        open(temporary, "w").close()  # a file where a folder must be: no write succeeds, even as root
        answer = post(relay.url, EVENT, event())
        assert answer.status == 503
        assert answer.json_body["errorCode"] == 1123 and answer.json_body["retryAfterSeconds"] >= 1
        assert str(tmp_path) not in answer.data.decode()  # the reason is logged, not told to the client
        ready = get(relay.url, "/readyz")
        assert ready.status == 503
        assert metrics(relay.url)[("playhooks_relay_ready",)] == 0
        assert emulator.events == []


class TestNothingRefusedIsForwarded:
    def test_after_every_kind_of_refusal_only_the_accepted_payload_reaches_the_service(self, make_relay, emulator):
        relay = make_relay(limits="max_body_bytes = 4096\nrequests_per_second_per_player = 1\nmax_session_seconds = 3600")
        refused = [
            post(relay.url, SESSIONS, session(), key=None),
            post(relay.url, SESSIONS, session(), key="ik_unknown_key_1"),
            post(relay.url, SESSIONS, session(), key=EVENTS_ONLY_KEY),
            post(relay.url, SESSIONS, session(metadata={"padding": "x" * 5000})),
            post(relay.url, SESSIONS, session(), content_type="text/plain"),
            post(relay.url, SESSIONS, b"{"),
            post(relay.url, SESSIONS, session(durationSeconds=0)),
            post(relay.url, SESSIONS, session(durationSeconds=7200)),
        ]
        assert [answer.status for answer in refused] == [401, 401, 403, 413, 415, 400, 400, 400]
        # One player, a request a second: of four at once (spanning two windows at most), some are refused.
        sent = [session(user="player-kept") for _ in range(4)]
        statuses = [post(relay.url, SESSIONS, data).status for data in sent]
        assert 429 in statuses and set(statuses) <= {202, 429}
        kept = [data for data, status in zip(sent, statuses) if status == 202]
        assert emulator.wait_until(lambda e: len(e.sessions) == len(kept), 10)
        assert sorted(emulator.sessions, key=lambda data: data["sessionId"]) == sorted(kept, key=lambda data: data["sessionId"])
        assert wait_for(lambda: relay.store.queue.pending() == 0, 10)  # nothing else was stored


class TestSecrets:
    def test_no_secret_in_any_answer_log_line_or_metric(self, make_relay, emulator, caplog):
        """Every kind of answer, upstream errors included, read for both services' secrets and the ingest key."""
        caplog.set_level(logging.DEBUG)
        emulator.fail_next(1, status=401, route="playcamp", body={"error": f"bad key {SECRETS[0]}"})
        relay = make_relay(limits="requests_per_second_per_player = 1")
        answers = [
            post(relay.url, SESSIONS, session()),
            post(relay.url, SESSIONS, session(), key=None),
            post(relay.url, SESSIONS, session(), key="ik_unknown_key_1"),
            post(relay.url, SESSIONS, session(), key=EVENTS_ONLY_KEY),
            post(relay.url, EVENT, event()),
            post(relay.url, EVENT, event()),
            post(relay.url, EVENT, b"{", content_type="application/json"),
            post(relay.url, "/nowhere", {}),
        ]
        # (two events for one player a second: the second is refused, unless a window's edge fell between them)
        taken = sum(answer.status == 200 for answer in answers[4:6])
        assert emulator.wait_until(lambda e: e.counters["faults"] == 1 and len(e.events) == taken, 10)
        texts = [answer.data.decode("utf-8", "replace") for answer in answers]
        texts += [get(relay.url, path).data.decode() for path in ("/metrics", "/readyz", "/livez")]
        texts.append(caplog.text)
        for secret in (*SECRETS, INGEST_KEY, EVENTS_ONLY_KEY, "player-1"):
            assert not any(secret in text for text in texts), secret

    def test_the_relays_repr_and_config_hold_no_secret(self, make_relay, emulator):
        relay = make_relay()
        shown = repr(relay.config) + repr(relay.store._sinks)
        assert not any(secret in shown for secret in SECRETS)


class TestOperations:
    def test_livez_readyz_and_metrics_answer_without_a_key(self, make_relay, emulator):
        relay = make_relay()
        assert get(relay.url, "/livez").status == 200
        assert get(relay.url, "/readyz").status == 200
        values = metrics(relay.url)
        assert values[("playhooks_relay_ready",)] == 1
        assert values[("playhooks_relay_pending", ("service", "playcamp"))] == 0

    def test_metrics_count_forwarded_payloads_and_upstream_errors_by_status(self, make_relay, emulator):
        emulator.fail_next(1, status=503, route="playfab")
        relay = make_relay()
        assert post(relay.url, EVENT, event()).status == 200
        assert emulator.wait_until(lambda e: len(e.events) == 1, 10)
        forwarded = ("playhooks_relay_forwarded_total", ("service", "playfab"))
        assert wait_for(lambda: metrics(relay.url).get(forwarded) == 1, 10)
        assert metrics(relay.url)[("playhooks_relay_upstream_errors_total", ("service", "playfab"), ("status", "503"))] == 1

    def test_the_pending_gauge_and_oldest_age_show_a_backlog(self, make_relay, emulator):
        emulator.hang_next(10, route="playcamp", seconds=30)
        relay = make_relay()
        for number in range(3):
            assert post(relay.url, SESSIONS, session(user=f"player-{number}")).status == 202
        values = metrics(relay.url)
        assert values[("playhooks_relay_pending", ("service", "playcamp"))] == 3
        assert values[("playhooks_relay_oldest_pending_seconds", ("service", "playcamp"))] >= 0

    def test_unknown_routes_and_methods_are_refused(self, make_relay, emulator):
        relay = make_relay()
        assert post(relay.url, "/elsewhere", {}).status == 404
        assert get(relay.url, SESSIONS).status == 405


class TestRedis:
    def test_redis_down_is_503_nothing_acknowledged_and_not_ready(self, make_relay, emulator, tmp_path):
        skip_unless_available()
        with RedisServer(tmp_path / "redis") as server:
            relay = make_relay(extra=f'\n[redis]\nurl = "{server.url}"\n')
            assert post(relay.url, SESSIONS, session()).status == 202
            assert get(relay.url, "/readyz").status == 200
            server.stop()
            answer = post(relay.url, SESSIONS, session(user="player-2"))
            assert answer.status == 503 and answer.headers["Retry-After"].isdigit()
            ready = get(relay.url, "/readyz")
            assert ready.status == 503 and json.loads(ready.data)["problems"]
            assert rejected(metrics(relay.url), "unavailable") == 1
            server.start()
            assert get(relay.url, "/readyz").status == 200
            assert emulator.wait_until(lambda e: len(e.sessions) == 1, 10)

    def test_two_relays_on_one_redis_share_the_rate_per_key_and_per_player(self, make_relay, emulator, tmp_path):
        """One limit, however many instances answer: alternate requests between two relays."""
        skip_unless_available()
        with RedisServer(tmp_path / "redis") as server:
            limits = "requests_per_second_per_key = 3\nrequests_per_second_per_player = 1000"
            extra = f'\n[redis]\nurl = "{server.url}"\n'
            relays = [make_relay(limits=limits, extra=extra, name=name) for name in ("first", "second")]
            started = time.monotonic()
            answers = [post(relays[number % 2].url, SESSIONS, session(user=f"player-{number}")) for number in range(12)]
            windows = math.ceil(time.monotonic() - started)  # a window opens at its first request and lasts 1 s
            taken = sum(answer.status == 202 for answer in answers)
            assert all(answer.status in (202, 429) for answer in answers)
            assert taken <= 3 * windows  # each relay on its own would take 3 a window: 6
            assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status == 429)
            counted = sum(rejected(metrics(relay.url), "rate_limited_key") for relay in relays)
            assert counted == 12 - taken > 0
            # Per player too: one player's events, alternating, past a limit of 2 a second.
            limits = "requests_per_second_per_player = 2"
            players = [make_relay(limits=limits, extra=extra, name=name) for name in ("third", "fourth")]
            started = time.monotonic()
            answers = [post(players[number % 2].url, EVENT, event()) for number in range(8)]
            windows = math.ceil(time.monotonic() - started)
            assert sum(answer.status == 200 for answer in answers) <= 2 * windows
