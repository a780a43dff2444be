"""Delivery to PlayCamp and PlayFab through the spool, against the emulator over loopback HTTP."""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import playhooks
from playhooks.emulator import Emulator
from playhooks.testing import ManualClock

from helpers import FAST, PLAYER, SECRET_KEY, play, playfab_tracker, sinks

def spool_files(spool, folder):
    found = []
    for root, _, files in os.walk(os.path.join(spool)):
        if os.path.basename(root) == folder or os.path.basename(os.path.dirname(root)) == folder:
            found.extend(os.path.join(root, name) for name in files)
    return found


def spooled_event_names(spool):
    """The events waiting or being sent, read while a sender may be moving their files."""
    for _ in range(5):
        names = set()
        try:
            for path in spool_files(spool, "queue") + spool_files(spool, "claimed"):
                with open(path, encoding="utf-8") as file:
                    names.update(json.loads(line)["data"]["EventName"] for line in file)
            return names
        except FileNotFoundError:
            continue  # claimed or settled between the listing and the read: list again
    raise AssertionError("the spool kept changing under the reader")


class TestDelivery:
    def test_sessions_and_events_arrive_exactly_as_built(self, make_tracker, emulator):
        """What the emulator stores is the payload the hooks made, byte for byte in JSON terms."""
        memory = playhooks.MemorySink()
        tracker = make_tracker()
        tracker.sinks.append(memory)  # not how users add sinks, but shows the same payload twice
        session = play(tracker, seconds=42)

        assert 0 == tracker.flush(timeout=10)
        [stored] = emulator.sessions
        [event] = emulator.events
        assert (session.id, "player-1", 42) == (stored["sessionId"], stored["userId"], stored["durationSeconds"])
        assert ("level_completed", PLAYER["playfab_id"]) == (event["EventName"], event["PlayFabId"])
        assert 32 == len(event["Body"]["playhooks_event_id"])
        assert {"confirmed_by_service": 2, "written_to_spool": 2, "pending": 0} == {key: tracker.stats()[key] for key in ("confirmed_by_service", "written_to_spool", "pending")}

    def test_sink_defaults_fill_sessions(self, emulator, spool):
        """PlayCamp(campaign_id=..., platform=...) fills what a session does not set itself."""
        tracker = playhooks.Tracker(
            sinks(emulator, campaign_id="spring", platform="Web", is_test=False), spool_dir=spool, clock=ManualClock()
        )
        play(tracker)
        tracker.close(timeout=10)

        assert ("spring", "Web") == (emulator.sessions[0]["campaignId"], emulator.sessions[0]["platform"])

    def test_nothing_is_left_in_the_spool(self, make_tracker, spool):
        """Delivered records leave no file behind."""
        tracker = make_tracker()
        play(tracker)
        assert 0 == tracker.flush(timeout=10)

        assert [] == spool_files(spool, "queue") + spool_files(spool, "claimed") + spool_files(spool, "dead")


class TestRetries:
    def test_a_503_burst_is_retried_until_delivered(self, make_tracker, emulator):
        """Five 503s in a row delay delivery; they do not lose anything."""
        emulator.fail_next(5, 503)
        tracker = make_tracker()
        play(tracker)

        assert 0 == tracker.flush(timeout=10)
        assert (1, 1) == (len(emulator.sessions), len(emulator.events))
        assert 5 == tracker.stats()["retried"]

    def test_dropped_connections_are_retried(self, make_tracker, emulator):
        """A connection closed without an answer is tried again."""
        emulator.drop_next(3)
        tracker = make_tracker()
        play(tracker)

        assert 0 == tracker.flush(timeout=10)
        assert (1, 1) == (len(emulator.sessions), len(emulator.events))

    def test_a_timeout_is_retried_and_playcamp_deduplicates(self, make_tracker, emulator):
        """A read timeout is retried; the session sent twice is stored once (same sessionId)."""
        emulator.delay_next(1, seconds=0.5, route="playcamp")
        tracker = make_tracker(read_timeout=0.1)
        play(tracker, events=())

        assert 0 == tracker.flush(timeout=10)
        assert emulator.wait_until(lambda e: e.counters["duplicates"] == 1, timeout=10)  # the late first try
        assert (2, 1) == (emulator.counters["requests"], len(emulator.sessions))
        assert "no answer: ReadTimeoutError" == tracker.stats()["last_error"]["playcamp"]

    def test_retry_after_is_honoured(self, make_tracker, emulator):
        """After a 429 with Retry-After: 1, no request reaches that service for a second."""
        emulator.fail_next(1, 429, headers={"Retry-After": "1"}, route="playfab")
        tracker = make_tracker(max_in_flight=1)  # one at a time: the second request is sent after the answer
        for number in range(3):
            tracker.on_character_event("tick", body={"n": number}, **PLAYER)

        assert 0 == tracker.flush(timeout=10)
        times = [request["time"] for request in emulator.requests if request["path"] == "/Server/WriteCharacterEvent"]
        assert times[1] - times[0] >= 1.0
        assert 3 == len(emulator.events)

    def test_playfab_retry_after_seconds_is_honoured(self, spool):
        """PlayFab's throttling body (retryAfterSeconds) holds back the next request too."""
        with Emulator(rate_limit=1, rate_window=1.0) as emulator:
            tracker = playfab_tracker(emulator, spool, retry=FAST)
            for number in range(2):
                tracker.on_character_event("tick", body={"n": number}, **PLAYER)
                tracker.flush(timeout=5)
            remaining = tracker.flush(timeout=10)
            tracker.close(timeout=5)

        times = [request["time"] for request in emulator.requests]
        assert (0, 2) == (remaining, len(emulator.events))
        assert times[-1] - times[-2] >= 1.0

    def test_final_errors_are_dead_lettered_not_retried(self, make_tracker, emulator, spool):
        """A 400 is final: one request, the record kept in dead/, counted as rejected."""
        emulator.fail_next(1, 400, route="playfab")
        tracker = make_tracker()
        tracker.on_character_event("tick", **PLAYER)

        assert 0 == tracker.flush(timeout=10)
        assert 1 == emulator.counters["requests"]
        assert 1 == tracker.stats()["refused_by_service"]
        [dead] = spool_files(spool, "dead")
        with open(dead, encoding="utf-8") as file:
            record = json.loads(file.readline())
        assert ("tick", 1, "HTTP 400 BadRequest: scripted fault") == (
            record["data"]["EventName"],
            record["attempts"],
            record["error"],
        )

    def test_playfab_final_error_codes_are_rejections(self, spool):
        """An unknown character (CharacterNotFound 1135) is final: one request, then dead-lettered."""
        with Emulator(characters={"P1": ["C1"]}) as strict_emulator:
            tracker = playhooks.Tracker(
                [playhooks.PlayFab("ABCD", SECRET_KEY, strict_emulator.url)], spool_dir=spool, retry=FAST
            )
            tracker.on_character_event("tick", playfab_id="P1", character_id="nope")
            tracker.flush(timeout=10)
            stats = tracker.stats()
            tracker.close(timeout=5)

        assert (1, 1) == (stats["refused_by_service"], strict_emulator.counters["requests"])
        assert "CharacterNotFound" in stats["last_error"]["playfab"]

    def test_giving_up_is_counted(self, make_tracker, emulator):
        """Past max_attempts a record is given up on, kept in dead/, and counted."""
        emulator.fail_next(10, 503)
        tracker = make_tracker(retry=playhooks.RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=3))
        tracker.on_character_event("tick", **PLAYER)

        assert 0 == tracker.flush(timeout=10)
        assert ({"gave_up": 1}, 3) == (tracker.stats()["dropped"], emulator.counters["requests"])


class TestBulk:
    def test_a_bulk_refused_as_a_whole_is_sent_one_by_one(self, make_tracker, emulator):
        """A 413 for the whole bulk request does not dead-letter its sessions: each goes alone."""
        emulator.fail_next(1, 413, route="/v1/server/playtime/sessions/bulk")
        tracker = make_tracker(flush_interval=60)
        for user in ("a", "b", "c"):
            play(tracker, user=user, events=())

        assert 0 == tracker.flush(timeout=10)  # one worker round: one spool file, one bulk request
        paths = [request["path"] for request in emulator.requests]
        assert ["/v1/server/playtime/sessions/bulk"] + ["/v1/server/playtime/sessions"] * 3 == paths
        assert (["a", "b", "c"], 0) == (sorted(s["userId"] for s in emulator.sessions), tracker.stats()["refused_by_service"])


    def test_a_backlog_goes_through_the_bulk_endpoint(self, make_tracker, emulator):
        """Sessions that piled up during an outage are sent 100 to a request, each recorded once."""
        emulator.fail_next(100_000, 503, route="playcamp")
        tracker = make_tracker(retry=playhooks.RetryPolicy(base_delay=0.05, max_delay=0.05, max_attempts=10_000))
        for number in range(250):
            play(tracker, user=f"player-{number}", events=())
        tracker.flush(timeout=0.5)  # every session is in the spool, and failed at least once
        emulator.reset()

        assert 0 == tracker.flush(timeout=20)
        paths = {request["path"] for request in emulator.requests}
        assert 250 == len(emulator.sessions)
        assert {"/v1/server/playtime/sessions/bulk"} == paths
        assert 3 <= len(emulator.requests) <= 25  # not 250: a hundred a request, as they come due
        assert {} == tracker.stats()["dropped"]

    def test_bulk_items_are_settled_one_by_one(self, make_tracker, emulator):
        """A session PlayCamp already has (SKIPPED) counts as sent; the others are recorded."""
        tracker = make_tracker(flush_interval=60)
        first = play(tracker, user="a", events=())
        tracker.flush(timeout=10)
        for user in ("b", "c"):
            play(tracker, user=user, events=())
        tracker._queue.append(("segment", first._segment(first._started)))  # the first, again

        assert 0 == tracker.flush(timeout=10)
        assert ["a", "b", "c"] == sorted(session["userId"] for session in emulator.sessions)


class TestSpool:
    def test_a_corrupt_file_is_quarantined(self, make_tracker, emulator, spool):
        """An unreadable spool file is moved aside and counted; the rest is delivered."""
        queue = os.path.join(spool, "playfab", "queue")
        os.makedirs(queue)
        with open(os.path.join(queue, "0000000000001-1-0000000000001-garbage.jsonl"), "w") as file:
            file.write("{not json")
        with open(os.path.join(queue, "not-a-spool-file.txt"), "w") as file:
            file.write("?")
        tracker = make_tracker()
        tracker.on_character_event("tick", **PLAYER)

        assert 0 == tracker.flush(timeout=10)
        assert (2, 1) == (tracker.stats()["quarantined_files"], len(emulator.events))
        assert 2 == len(os.listdir(os.path.join(spool, "quarantine")))

    def test_payloads_survive_a_restart(self, emulator, spool):
        """What one tracker could not deliver, the next one started on the spool delivers."""
        emulator.fail_next(100, 503)
        first = playhooks.Tracker(sinks(emulator), spool_dir=spool, clock=ManualClock())
        play(first)
        pending = first.close(timeout=1)
        emulator.reset()

        second = playhooks.Tracker(sinks(emulator), spool_dir=spool)
        remaining = second.flush(timeout=10)
        second.close(timeout=5)

        assert (2, 0) == (pending, remaining)
        assert (1, 1) == (len(emulator.sessions), len(emulator.events))

    def test_bounds_drop_events_before_sessions(self, emulator, spool):
        """Past max_spool_records the oldest events go first, each counted as spool_full."""
        emulator.hang_next(1)  # the session's request hangs
        emulator.fail_next(10**6, 429, headers={"Retry-After": "60"}, route="playfab")  # events wait their turn
        tracker = playhooks.Tracker(
            sinks(emulator), spool_dir=spool, clock=ManualClock(), max_spool_records=5, read_timeout=30
        )
        play(tracker, events=())
        tracker.flush(timeout=0.5)
        for number in range(3):
            tracker.on_character_event("tick", body={"n": number}, **PLAYER)
            tracker.flush(timeout=0.5)  # one spool file each
        tracker.on_character_event("tick", body={"n": 3}, **PLAYER)
        tracker.on_character_event("tick", body={"n": 4}, **PLAYER)
        tracker.flush(timeout=0.5)
        stats = tracker.stats()
        kept = {}
        for path in spool_files(spool, "queue") + spool_files(spool, "claimed"):
            with open(path, encoding="utf-8") as file:
                for line in file:
                    record = json.loads(line)
                    kept.setdefault(record["kind"], []).append(record["data"])
        tracker.close(timeout=0.5)

        assert {"spool_full": 1} == stats["dropped"]
        assert 1 == len(kept["session"])
        assert [1, 2, 3, 4] == sorted(event["Body"]["n"] for event in kept["event"])


class TestExit:
    def test_flush_after_close_returns_at_once(self, make_tracker, emulator):
        """With records waiting for a retry, a flush after close() neither spins nor waits."""
        emulator.fail_next(100, 503)
        tracker = make_tracker(retry=playhooks.RetryPolicy(base_delay=0.2, max_delay=0.2))
        tracker.on_character_event("tick", **PLAYER)
        tracker.close(timeout=0.5)

        started = time.monotonic()
        pending = tracker.flush(timeout=2)

        assert 1 == pending
        assert time.monotonic() - started < 1

    def test_a_request_in_flight_at_close_is_not_sent_again(self, emulator, spool):
        """close() returns while a request is in flight; a new tracker on the spool does not resend it."""
        emulator.delay_next(1, seconds=2, route="playfab")
        first = playhooks.Tracker(sinks(emulator), spool_dir=spool)
        first.on_character_event("tick", **PLAYER)
        first.flush(timeout=0.5)  # the request is now held by the server
        first.close(timeout=0.5)
        second = playhooks.Tracker(sinks(emulator), spool_dir=spool)
        second.flush(timeout=0.5)
        first._sender.join(10)  # the held request ends, and is settled by its own tracker
        second.flush(timeout=5)
        second.close(timeout=5)

        assert 1 == len(emulator.events)


    def test_close_is_bounded_while_the_server_hangs(self, make_tracker, emulator, spool):
        """close(1) returns within about a second with the session still pending in the spool."""
        emulator.hang_next(10)
        tracker = make_tracker(read_timeout=30)
        play(tracker, events=())

        started = time.monotonic()
        pending = tracker.close(timeout=1)
        took = time.monotonic() - started

        assert took < 3
        assert 1 == pending
        assert 1 == len(spool_files(spool, "claimed") + spool_files(spool, "queue"))


CHILD = textwrap.dedent(
    """
    import sys, playhooks
    from playhooks.testing import ManualClock
    url, spool = sys.argv[1], sys.argv[2]
    clock = ManualClock()
    tracker = playhooks.Tracker(
        [playhooks.PlayCamp("k:s", url), playhooks.PlayFab("ABCD", "secret", url)],
        spool_dir=spool, clock=clock, durability="sync",
    )
    tracker.on_session_start("crashing-player", playfab_id="P", character_id="C", metadata={"level": 3})
    for number in range(5):
        tracker.on_character_event("tick", body={"n": number})
    clock.advance(42)
    tracker.flush(timeout=1)  # checkpoints the open session; the server refuses everything
    print("ready", flush=True)
    sys.stdin.read()
    """
)


class TestCrash:
    def test_a_killed_process_loses_nothing(self, emulator, spool):
        """SIGKILL mid-session: the next start delivers the spooled events and recovers the session."""
        emulator.fail_next(10_000, 503)
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, emulator.url, spool], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as child:
            assert "ready" == child.stdout.readline().strip()
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        emulator.reset()

        tracker = playhooks.Tracker(sinks(emulator), spool_dir=spool, retry=FAST)
        remaining = tracker.flush(timeout=10)
        stats = tracker.stats()
        tracker.close(timeout=5)

        [session] = emulator.sessions
        assert (0, 5, 1) == (remaining, len(emulator.events), stats["recovered_sessions"])
        assert ("crashing-player", 42, {"level": 3, "playhooks_recovered": True}) == (
            session["userId"],
            session["durationSeconds"],
            session["metadata"],
        )


SHARER = textwrap.dedent(
    """
    import sys, playhooks
    url, spool = sys.argv[1], sys.argv[2]
    tracker = playhooks.Tracker(
        [playhooks.PlayCamp("k:s", url), playhooks.PlayFab("ABCD", "secret", url)], spool_dir=spool,
        retry=playhooks.RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=10_000),
    )
    tracker.flush(timeout=30)
    tracker.close(timeout=5)
    """
)


class TestSharedSpool:
    def test_two_processes_never_send_a_record_twice(self, emulator, spool):
        """Two processes draining one spool together: every event reaches the service once."""
        emulator.fail_next(100_000, 503)
        # One spool file per event, so both processes find work.
        filler = playhooks.Tracker(sinks(emulator), spool_dir=spool, clock=ManualClock(), durability="sync")
        for number in range(400):
            filler.on_character_event("tick", body={"n": number}, **PLAYER)
        filler.close(timeout=2)
        emulator.reset()

        processes = [
            subprocess.Popen([sys.executable, "-c", SHARER, emulator.url, spool], stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        for process in processes:
            process.communicate(timeout=60)

        ids = [event["Body"]["playhooks_event_id"] for event in emulator.events]
        assert [0, 0] == [process.returncode for process in processes]
        assert (400, 400) == (len(ids), len(set(ids)))


class TestDurability:
    def test_sync_durability_writes_before_the_hook_returns(self, make_tracker, emulator, spool):
        """With durability="sync" the event is in the spool when the hook returns, no flush needed."""
        emulator.fail_next(100, 503)
        tracker = make_tracker(durability="sync", flush_interval=3600)
        tracker.on_character_event("tick", **PLAYER)

        assert {"tick"} == spooled_event_names(spool)

    def test_the_default_writes_within_the_interval_off_the_caller(self, make_tracker, emulator, spool):
        """By default the hook only queues; the worker writes the spool on its next round."""
        emulator.fail_next(100, 503)
        tracker = make_tracker(flush_interval=3600)
        tracker.on_character_event("tick", **PLAYER)
        before = spooled_event_names(spool)
        tracker.flush(timeout=0.5)

        assert (set(), {"tick"}) == (before, spooled_event_names(spool))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+ warns about fork with threads
def test_a_forked_child_tracks_on_its_own(make_tracker, emulator):
    """After os.fork() the child gets working threads of its own, and does not resend the parent's."""
    tracker = make_tracker(flush_interval=3600)
    tracker.on_character_event("parent_before_fork", **PLAYER)
    pid = os.fork()
    if pid == 0:  # the child: exit without running pytest's teardown
        tracker.on_character_event("child", **PLAYER)
        os._exit(0 if tracker.flush(timeout=10) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    tracker.on_character_event("parent_after_fork", **PLAYER)

    assert 0 == tracker.flush(timeout=10)
    assert 0 == os.waitstatus_to_exitcode(status)
    assert ["child", "parent_after_fork", "parent_before_fork"] == sorted(e["EventName"] for e in emulator.events)


class TestSecrets:
    def test_no_secret_in_logs_spool_repr_or_errors(self, make_tracker, emulator, spool, caplog):
        """The keys appear nowhere a player or a log reader could see them."""
        emulator.fail_next(2, 401)
        with caplog.at_level(logging.DEBUG, logger="playhooks"):
            tracker = make_tracker()
            play(tracker)
            tracker.flush(timeout=10)
            shown = [repr(tracker), repr(tracker.sinks), str(tracker.stats())]
        for path in spool_files(spool, "dead") + spool_files(spool, "queue"):
            with open(path, encoding="utf-8") as file:
                shown.append(file.read())
        for bad in (lambda: playhooks.PlayCamp("no-colon-" + SECRET_KEY), lambda: playhooks.PlayFab("A B", SECRET_KEY)):
            with pytest.raises(playhooks.ConfigurationError) as caught:
                bad()
            shown.append(str(caught.value))
        shown.append(caplog.text)

        text = "\n".join(shown)
        assert "very-secret-playcamp-value" not in text
        assert SECRET_KEY not in text
        assert "HTTP 401" in text  # the logs and stats did say what went wrong


def test_tls_is_always_verified(spool):
    """An HTTPS service whose certificate no trusted authority signed gets nothing."""
    import ssl

    import trustme

    from playhooks._server import ServerThread

    emulator = Emulator()
    server = ServerThread(emulator)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    server.start()
    try:
        url = server.url.replace("http://", "https://")
        tracker = playhooks.Tracker(
            [playhooks.PlayFab("ABCD", SECRET_KEY, url)], spool_dir=spool, retry=playhooks.RetryPolicy(base_delay=60)
        )
        tracker.on_character_event("tick", **PLAYER)
        pending = tracker.flush(timeout=1)
        stats = tracker.stats()
        tracker.close(timeout=1)
    finally:
        server.stop()

    assert (1, []) == (pending, emulator.events)
    assert "SSLError" in stats["last_error"]["playfab"]


class TestConfiguration:
    @pytest.mark.parametrize("key", ["no-colon", ":secret", "key:", "", None], ids=str)
    def test_a_bad_playcamp_key_fails_at_construction(self, key):
        """A malformed key is a ConfigurationError when the sink is made, never at the first send."""
        with pytest.raises(playhooks.ConfigurationError, match="api_key: "):
            playhooks.PlayCamp(key)

    @pytest.mark.parametrize("key", ["key:TOPSECRET\n", "key:TOP SECRET", "key:TOPSÉCRET"], ids=["newline", "space", "non-ascii"])
    def test_a_key_that_cannot_be_a_header_is_refused(self, key):
        """A pasted newline would make every request fail, and the HTTP library quote the key."""
        with pytest.raises(playhooks.ConfigurationError) as caught:
            playhooks.PlayCamp(key)
        with pytest.raises(playhooks.ConfigurationError):
            playhooks.PlayFab("ABCD", key)

        assert "TOP" not in str(caught.value)

    def test_the_default_spool_is_per_program(self, monkeypatch):
        """Two games whose scripts share a name still get their own spools."""
        folders = set()
        for script in ("/games/one/main.py", "/games/two/main.py"):
            monkeypatch.setattr(sys, "argv", [script])
            folders.add(playhooks.Settings().spool_folder())

        assert 2 == len(folders)
        assert all(os.path.basename(folder).startswith("main-") for folder in folders)

    def test_plain_http_only_to_this_machine(self):
        """Keys never travel unencrypted: http:// is refused except to localhost."""
        with pytest.raises(playhooks.ConfigurationError, match="https"):
            playhooks.PlayFab("ABCD", "secret", "http://example.com")
        assert "http://127.0.0.1:1" == playhooks.PlayFab("ABCD", "secret", "http://127.0.0.1:1/").base_url
