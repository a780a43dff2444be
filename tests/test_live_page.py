"""The live page of the emulator and the relay: its files, its activity feed, its secrets kept out,
the relay's access rules, and the emulator command's lines. Over real HTTP on loopback."""

import json
import os
import signal
import subprocess
import sys

import pytest
import urllib3

import playhooks
from playhooks._activity import ActivityLog, Tally
from playhooks._live_page import CONTENT_SECURITY_POLICY
from playhooks.emulator import Emulator
from playhooks.testing import ManualClock

from helpers import API_KEY, FAST, PLAYER, SECRET_KEY, sinks

SESSIONS = "/v1/server/playtime/sessions"
EVENTS = "/Server/WriteCharacterEvent"
SECRET_PART = API_KEY.split(":", 1)[1]


@pytest.fixture(scope="module")
def http():
    with urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=10)) as manager:
        yield manager


def get_json(http, url):
    response = http.request("GET", url)
    assert 200 == response.status, response.data
    return json.loads(response.data)


def post(http, url, body, headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.request("POST", url, body=data, headers={"Content-Type": "application/json", **headers})


def session_body(session_id="s-1", seconds=60, **extra):
    return {
        "sessionId": session_id,
        "userId": "player-1",
        "durationSeconds": seconds,
        "startedAt": "2024-01-15T10:30:00.000Z",
        "endedAt": "2024-01-15T10:31:00.000Z",
        **extra,
    }


def play_sessions(emulator, spool, sessions=2, events=("level_completed", "coin_collected")):
    """Sessions with events, sent by a real Tracker over HTTP; returns when all are delivered."""
    tracker = playhooks.Tracker(sinks(emulator), spool_dir=spool, clock=ManualClock(), retry=FAST)
    try:
        for number in range(sessions):
            session = tracker.on_session_start(f"player-{number}", **PLAYER)
            for name in events:
                tracker.on_character_event(name, body={"n": number}, session=session)
            tracker.settings.clock.advance(90 * (number + 1))
            tracker.on_session_end(session)
        assert 0 == tracker.flush(timeout=20)
    finally:
        tracker.close(timeout=5)


class TestPageFiles:
    @pytest.mark.parametrize(
        "name, content_type, marker",
        [
            ("", "text/html; charset=utf-8", b"<!doctype html>"),
            ("live.css", "text/css; charset=utf-8", b":root"),
            ("live.js", "text/javascript; charset=utf-8", b"use strict"),
        ],
    )
    def test_each_file_is_served_with_its_type_and_a_policy_forbidding_remote_loads(self, http, emulator, name, content_type, marker):
        """The page and its two companions come from the package, each with its own type and the CSP."""
        response = http.request("GET", emulator.page_url + name)

        assert (200, content_type) == (response.status, response.headers["Content-Type"])
        assert marker in response.data
        assert CONTENT_SECURITY_POLICY == response.headers["Content-Security-Policy"]
        assert "nosniff" == response.headers["X-Content-Type-Options"]

    def test_the_policy_allows_this_server_alone(self):
        """Nothing in the policy names another origin, and everything not listed is refused."""
        directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))

        assert "'none'" == directives["default-src"]
        assert {"'self'", "'none'", "data:"} >= {source for value in directives.values() for source in value.split()}

    def test_the_page_loads_nothing_from_elsewhere(self, http, emulator):
        """No http(s) address and no inline script in the page: it works with no network at all."""
        page = http.request("GET", emulator.page_url).data.decode()

        assert "http://" not in page and "https://" not in page
        assert "<script>" not in page  # only <script src=...>: the policy forbids inline code

    def test_the_script_writes_data_as_text_only(self):
        """live.js never hands a string to the HTML parser: payloads are attacker-controlled."""
        import playhooks._live_page as live_page

        script = live_page._read("live.js").decode()

        assert [] == [word for word in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(") if word in script]

    def test_the_address_without_its_slash_redirects_to_the_page(self, http, emulator):
        """`/_emulator` answers with the page's address, whose relative links need the slash."""
        response = http.request("GET", emulator.url + "/_emulator", redirect=False)

        assert (308, "/_emulator/") == (response.status, response.headers["Location"])


class TestActivity:
    def test_requests_appear_with_their_outcome_reason_and_ids(self, http, emulator, spool):
        """A tracker's sessions and events are accepted rows with their ids; a bad key is a rejected row with its reason."""
        play_sessions(emulator, spool, sessions=1, events=("level_completed",))
        post(http, emulator.url + EVENTS, {"CharacterId": "C", "PlayFabId": "P", "EventName": "x"}, {})

        entries = get_json(http, emulator.page_url + "activity?after=0")["entries"]

        playcamp = [e for e in entries if e["service"] == "playcamp"]
        playfab = [e for e in entries if e["service"] == "playfab" and e["outcome"] == "accepted"]
        rejected = [e for e in entries if e["outcome"] == "rejected"]
        assert [1] == [len(e["ids"]["sessionIds"]) for e in playcamp]
        assert (["accepted"], ["player-0"]) == ([e["outcome"] for e in playcamp], playcamp[0]["ids"]["userIds"])
        assert ["level_completed"] == [e["ids"]["eventName"] for e in playfab]
        assert playfab[0]["ids"]["eventId"]
        assert [(401, "NotAuthenticated: This API method does not allow anonymous callers.")] == [
            (e["status"], e["reason"]) for e in rejected
        ]
        assert list(range(1, len(entries) + 1)) == [e["seq"] for e in entries]

    def test_after_returns_only_newer_entries(self, http, emulator):
        """`after=N` gives the entries numbered above N, and `last` is where to ask from next."""
        for number in range(3):
            post(http, emulator.url + SESSIONS, session_body(f"s-{number}"), {"Authorization": "Bearer " + API_KEY})

        feed = get_json(http, emulator.page_url + "activity?after=1")
        again = get_json(http, emulator.page_url + f"activity?after={feed['last']}")

        assert ([2, 3], 3, 0) == ([e["seq"] for e in feed["entries"]], feed["last"], feed["missed"])
        assert ([], 3) == (again["entries"], again["last"])

    def test_limit_bounds_one_answer(self, http, emulator):
        """`limit` caps the entries of one answer; `latest` tells the page there is more to ask for."""
        for number in range(3):
            post(http, emulator.url + SESSIONS, session_body(f"s-{number}"), {"Authorization": "Bearer " + API_KEY})

        feed = get_json(http, emulator.page_url + "activity?after=0&limit=2")

        assert ([1, 2], 2, 3) == ([e["seq"] for e in feed["entries"]], feed["last"], feed["latest"])

    @pytest.mark.parametrize("query", ["after=-1", "after=two", "limit=1.5", "after=%EF%BC%91"])
    def test_a_bad_number_is_a_400(self, http, emulator, query):
        """after and limit are whole numbers, 0 or more; anything else is refused, not guessed at."""
        response = http.request("GET", emulator.page_url + "activity?" + query)

        assert 400 == response.status
        assert "must be a whole number" in json.loads(response.data)["error"]

    def test_numbers_go_on_across_a_reset(self, http, emulator):
        """A reset forgets the rows, not the numbering: a page polling `after` sees what comes next."""
        post(http, emulator.url + SESSIONS, session_body(), {"Authorization": "Bearer " + API_KEY})
        emulator.reset()
        post(http, emulator.url + SESSIONS, session_body("s-2"), {"Authorization": "Bearer " + API_KEY})

        assert [2] == [entry["seq"] for entry in emulator.activity(after=0)]

    def test_a_dropped_connection_is_a_row_without_status(self, http, emulator):
        """A `drop_next` fault leaves no answer: the row says so."""
        emulator.drop_next(route="playfab")
        with pytest.raises(urllib3.exceptions.ProtocolError):
            post(http, emulator.url + EVENTS, {}, {"X-SecretKey": SECRET_KEY})

        [entry] = emulator.activity()
        assert (None, "dropped") == (entry["status"], entry["outcome"])
        assert "closed without an answer" in entry["reason"]

    def test_a_body_that_is_not_json_is_shown_as_text(self, http, emulator):
        """The payload of a broken request is shown as the text it was, with a note."""
        post(http, emulator.url + EVENTS, b"{not json", {"X-SecretKey": SECRET_KEY})

        [entry] = emulator.activity()
        assert ("{not json", "not JSON (9 bytes), shown as text") == (entry["payload"], entry["payloadNote"])

    def test_the_summary_adds_up_sessions_playtime_and_event_names(self, http, emulator, spool):
        """Totals, the per-minute counts, the durations' histogram and the top event names."""
        play_sessions(emulator, spool, sessions=3, events=("coin", "coin", "level"))

        summary = get_json(http, emulator.page_url + "activity")["summary"]

        assert (3, 9, 90 + 180 + 270) == (summary["sessions"], summary["events"], summary["playtimeSeconds"])
        assert (3, 9) == (sum(m["sessions"] for m in summary["perMinute"]), sum(m["events"] for m in summary["perMinute"]))
        assert 30 == len(summary["perMinute"])
        assert {"1-5m": 3} == {d["label"]: d["count"] for d in summary["durations"] if d["count"]}
        assert [{"name": "coin", "count": 6}, {"name": "level", "count": 3}] == summary["topEvents"]


class TestSecrets:
    def test_no_key_appears_in_the_feed_or_the_page(self, http, spool):
        """Keys in headers, in payload fields and inside payload text are all redacted."""
        with Emulator(playcamp_keys=[API_KEY], playfab_secret_keys=[SECRET_KEY]) as emulator:
            play_sessions(emulator, spool, sessions=1)
            post(http, emulator.url + SESSIONS, session_body(note=f"my key is {API_KEY}", apiKey="hunter2"), {"Authorization": "Bearer " + API_KEY})
            post(http, emulator.url + EVENTS, {"EventName": "x", "Body": {"leak": SECRET_KEY}}, {"X-SecretKey": SECRET_KEY})
            post(http, emulator.url + SESSIONS, b"not json " + SECRET_PART.encode(), {"Authorization": "Bearer wrong:" + SECRET_PART + "x"})
            post(http, emulator.url + "/elsewhere/" + SECRET_KEY, {}, {"Authorization": "Bearer " + API_KEY})
            text = http.request("GET", emulator.page_url + "activity").data.decode()
            page = b"".join(http.request("GET", emulator.page_url + name).data for name in ("", "live.js", "live.css")).decode()

        assert [] == [secret for secret in (API_KEY, SECRET_PART, SECRET_KEY, "hunter2") if secret in text or secret in page]
        assert text.count("<redacted>") >= 5

    def test_redaction_is_done_once_and_kept(self):
        """A view is made on first reading; the request's bytes and secrets are let go then."""
        log = ActivityLog(secrets=lambda: ("server-secret",))
        log.add("playfab", "POST", EVENTS, 200, "accepted", raw=b'{"a": "server-secret and own-secret"}', secrets=["own-secret"])

        first, _ = log.after(0)
        second, _ = log.after(0)

        assert {"a": "<redacted> and <redacted>"} == first[0]["payload"]
        assert first[0] is second[0]


class TestActivityLog:
    def test_numbers_go_on_past_the_bound_and_the_forgotten_are_counted(self):
        """With room for 3, the 5th entry is numbered 5, and a page at 0 is told 2 were forgotten."""
        log = ActivityLog(size=3)
        for _ in range(5):
            log.add("playcamp", "POST", SESSIONS, 201, "accepted")

        entries, missed = log.after(0)
        newer, none_missed = log.after(3)

        assert ([3, 4, 5], 2) == ([e["seq"] for e in entries], missed)
        assert ([4, 5], 0) == ([e["seq"] for e in newer], none_missed)

    def test_a_large_body_is_kept_by_its_size_alone(self):
        """Memory stays bounded: a body over 64 KiB is not kept, only how large it was."""
        log = ActivityLog()
        log.add("playcamp", "POST", SESSIONS, 413, "rejected", raw=b"x" * 70000)

        [entry], _ = log.after(0)
        assert (None, "a body of 70000 bytes: over 64 KiB, not kept") == (entry["payload"], entry["payloadNote"])

    def test_event_names_are_bounded(self):
        """A flood of distinct names is tallied under "(other)" past the first thousand."""
        tally = Tally()
        for number in range(1005):
            tally.event(f"name-{number}", 0.0)

        names = {entry["name"]: entry["count"] for entry in tally.snapshot(0.0)["topEvents"]}
        assert 5 == names["(other)"]


class TestCommand:
    def run(self, http, *flags):
        """Start `playhooks emulate`, send a good and a refused request, stop it; its stdout lines."""
        command = [sys.executable, "-m", "playhooks", "emulate", "--port", "0", *flags]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
            try:
                first = process.stdout.readline()
                url = first.strip().rsplit(" ", 1)[-1]
                post(http, url + SESSIONS, session_body(), {"Authorization": "Bearer " + API_KEY})
                post(http, url + EVENTS, {}, {"X-SecretKey": ""})
                process.send_signal(signal.SIGTERM)
                assert 0 == process.wait(timeout=10)
                return url, [first.rstrip("\n"), *process.stdout.read().splitlines()]
            finally:
                if process.poll() is None:
                    process.kill()

    def test_it_prints_the_page_address_and_a_line_per_request(self, http):
        """The live page's address, then method, route, status, outcome and reason of each request."""
        url, lines = self.run(http)

        assert [
            f"playhooks emulator: PlayCamp and PlayFab on {url}",
            f"live page: {url}/_emulator/",
            "POST /v1/server/playtime/sessions 201 accepted",
            "POST /Server/WriteCharacterEvent 401 rejected: NotAuthenticated: This API method does not allow anonymous callers.",
        ] == lines

    def test_quiet_prints_no_request_lines(self, http):
        """`--quiet`: the two address lines only."""
        url, lines = self.run(http, "--quiet")

        assert [f"playhooks emulator: PlayCamp and PlayFab on {url}", f"live page: {url}/_emulator/"] == lines


# -- the relay's live page ------------------------------------------------------------------------

RELAY_PLAYCAMP_SECRET = "key-9:relay-upstream-playcamp-secret"
RELAY_PLAYFAB_SECRET = "RELAYUPSTREAMPLAYFABSECRET9"
INGEST_KEY = "ik_live_page_test_1"
ADMIN_KEY = "admin-key-for-the-live-page"
RELAY_LIVE = "/_relay/live/"
FROM_ELSEWHERE = {"X-Real-IP": "203.0.113.7"}  # what a proxy on this machine adds for a remote client


@pytest.fixture
def make_relay(tmp_path, monkeypatch):
    """A relay forwarding to an emulator, served by waitress on loopback: ``make_relay(live="...")``."""
    pytest.importorskip("waitress", reason="the relay's tests need its server: pip install -e '.[test]'")
    from playhooks.relay import Relay

    from helpers import ServedInThread

    monkeypatch.setenv("LIVE_TEST_PLAYCAMP", RELAY_PLAYCAMP_SECRET)
    monkeypatch.setenv("LIVE_TEST_PLAYFAB", RELAY_PLAYFAB_SECRET)
    monkeypatch.setenv("LIVE_TEST_ADMIN", ADMIN_KEY)
    made = []
    emulator = Emulator(playcamp_keys=[RELAY_PLAYCAMP_SECRET], playfab_secret_keys=[RELAY_PLAYFAB_SECRET]).start()

    def make(live=""):
        config = tmp_path / f"relay-{len(made)}.toml"
        config.write_text(
            f'[playcamp]\nurl = "{emulator.url}"\napi_key_env = "LIVE_TEST_PLAYCAMP"\n'
            f'[playfab]\ntitle_id = "ABCD"\nurl = "{emulator.url}"\nsecret_key_env = "LIVE_TEST_PLAYFAB"\n'
            "[upstream]\nretry_base_delay = 0.05\nretry_max_delay = 0.2\n"
            f'[[ingest_keys]]\nkey = "{INGEST_KEY}"\ngame = "coin-rush"\n' + (f"[live]\n{live}\n" if live else "")
        )
        relay = Relay(str(config), spool_dir=str(tmp_path / f"spool-{len(made)}")).start()
        served = ServedInThread(relay)
        relay.url, relay.emulator = served.url, emulator
        made.append((relay, served))
        return relay

    yield make
    for relay, served in made:
        served.stop()
        relay.close(1)
    emulator.stop()


def relay_event(name="level_completed"):
    return {"CharacterId": "C1", "PlayFabId": "P1", "EventName": name, "Body": {"playhooks_event_id": name + "-1"}}


class TestRelayPage:
    def test_a_loopback_client_sees_the_page_and_its_files(self, http, make_relay):
        """From this machine, no key is needed: the page and its files, with the policy."""
        relay = make_relay()

        answers = [http.request("GET", relay.url + RELAY_LIVE + name) for name in ("", "live.css", "live.js")]

        assert [200, 200, 200] == [answer.status for answer in answers]
        assert ["text/html; charset=utf-8", "text/css; charset=utf-8", "text/javascript; charset=utf-8"] == [
            answer.headers["Content-Type"] for answer in answers
        ]
        assert {CONTENT_SECURITY_POLICY} == {answer.headers["Content-Security-Policy"] for answer in answers}

    def test_the_feed_shows_what_games_sent_what_was_refused_and_what_was_forwarded(self, http, make_relay):
        """An accepted event, a refused one with its reason, and the forwarding; no key or secret anywhere."""
        from helpers import wait_for

        relay = make_relay()
        post(http, relay.url + EVENTS, relay_event(), {"Authorization": "Bearer " + INGEST_KEY})
        post(http, relay.url + EVENTS, {**relay_event("broken"), "PlayFabId": ""}, {"Authorization": "Bearer " + INGEST_KEY})
        post(http, relay.url + EVENTS, relay_event(), {"Authorization": "Bearer ik_not_a_real_key"})
        assert relay.emulator.wait_until(lambda e: len(e.events) == 1, 10)

        def feed():
            return get_json(http, relay.url + RELAY_LIVE + "activity?after=0")

        forwarded = wait_for(lambda: [e for e in feed()["entries"] if e["outcome"] == "forwarded"], 10)
        answer = http.request("GET", relay.url + RELAY_LIVE + "activity?after=0")
        entries = json.loads(answer.data)["entries"]

        assert [("playfab", "forwarded to playfab")] == [(e["service"], e["route"]) for e in forwarded]
        assert [(200, "accepted"), (400, "rejected"), (401, "rejected")] == [(e["status"], e["outcome"]) for e in entries if e["method"]]
        reasons = [e["reason"] for e in entries if e["outcome"] == "rejected"]
        assert reasons[0].startswith("invalid: ") and "PlayFabId" in reasons[0]
        assert "unauthorized: unknown or revoked ingest key" == reasons[1]
        assert "level_completed" == entries[0]["ids"]["eventName"]
        text = answer.data.decode()
        assert [] == [s for s in (INGEST_KEY, "ik_not_a_real_key", RELAY_PLAYCAMP_SECRET, RELAY_PLAYFAB_SECRET) if s in text]
        assert {"events": 1, "sessions": 0} == {k: json.loads(answer.data)["summary"][k] for k in ("events", "sessions")}

    def test_without_an_admin_key_other_clients_find_nothing(self, http, make_relay):
        """A client that came through a proxy is not local: with no admin key configured, 404."""
        relay = make_relay()

        answers = [http.request("GET", relay.url + RELAY_LIVE + name, headers=FROM_ELSEWHERE) for name in ("", "activity")]

        assert [404, 404] == [answer.status for answer in answers]

    @pytest.mark.parametrize(
        "authorization, status",
        [
            (None, 401),
            ("Bearer wrong-key", 403),
            ("Basic " + __import__("base64").b64encode(b"me:wrong-key").decode(), 403),
            ("Basic !!!", 403),
            ("Bearer " + ADMIN_KEY, 200),
            ("Basic " + __import__("base64").b64encode(("anyone:" + ADMIN_KEY).encode()).decode(), 200),
        ],
    )
    def test_from_elsewhere_the_admin_key_opens_it(self, http, make_relay, authorization, status):
        """401 with a Basic challenge (a browser asks), 403 for a wrong key, 200 with it as Bearer or Basic."""
        relay = make_relay(live='admin_key_env = "LIVE_TEST_ADMIN"')
        headers = {**FROM_ELSEWHERE, **({"Authorization": authorization} if authorization else {})}

        answer = http.request("GET", relay.url + RELAY_LIVE + "activity", headers=headers)

        assert status == answer.status
        assert (status == 401) == answer.headers.get("WWW-Authenticate", "").startswith("Basic ")
        assert ADMIN_KEY not in answer.data.decode()

    def test_loopback_off_asks_local_clients_for_the_key_too(self, http, make_relay):
        """Behind a proxy on this machine every client looks local: `loopback = false` closes that door."""
        relay = make_relay(live='admin_key_env = "LIVE_TEST_ADMIN"\nloopback = false')

        without = http.request("GET", relay.url + RELAY_LIVE)
        with_key = http.request("GET", relay.url + RELAY_LIVE, headers={"Authorization": "Bearer " + ADMIN_KEY})

        assert (401, 200) == (without.status, with_key.status)

    def test_an_admin_key_variable_that_is_unset_is_a_config_error(self, tmp_path, monkeypatch):
        """The key comes from the environment, as the services' secrets do; a missing one is named."""
        from playhooks import ConfigurationError
        from playhooks.relay import load_config

        monkeypatch.setenv("LIVE_TEST_PLAYFAB", RELAY_PLAYFAB_SECRET)
        monkeypatch.delenv("LIVE_TEST_UNSET", raising=False)
        config = tmp_path / "relay.toml"
        config.write_text('[playfab]\ntitle_id = "ABCD"\nsecret_key_env = "LIVE_TEST_PLAYFAB"\n[live]\nadmin_key_env = "LIVE_TEST_UNSET"\n')

        with pytest.raises(ConfigurationError, match=r"\[live\] admin_key_env: the variable LIVE_TEST_UNSET is not set"):
            load_config(str(config))

    def test_the_sample_config_documents_the_live_table(self, tmp_path, monkeypatch):
        """samples/relay.toml loads, with the page open to loopback clients only."""
        from playhooks.relay import load_config

        from helpers import ROOT

        monkeypatch.setenv("PLAYCAMP_API_KEY", "key:sample")
        monkeypatch.setenv("PLAYFAB_SECRET_KEY", "SAMPLE")

        live = load_config(os.path.join(ROOT, "samples", "relay.toml")).live

        assert (None, True) == (live.admin_key, live.loopback)


def test_coin_rush_says_where_its_emulators_page_was(tmp_path):
    """Coin Rush, on its own emulator, ends its summary with the live page's address."""
    pytest.importorskip("pygame", reason="Coin Rush needs pygame: pip install -e '.[pygame]'")
    from helpers import ROOT

    environment = {key: value for key, value in os.environ.items() if not key.startswith("PLAYHOOKS_")}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "samples", "coin_rush.py"), "--headless", "--frames", "60"],
        capture_output=True, text=True, timeout=120, env=environment, cwd=tmp_path,
    )

    assert 0 == result.returncode, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith("The emulator's live page was http://127.0.0.1:") and "/_emulator/ " in last
