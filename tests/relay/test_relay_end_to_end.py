"""A game in relay mode -> the relay, on real servers in processes of their own -> the emulator.

The emulator takes only the relay's secrets, and the game's environment holds none: what arrives
was sent by the game and signed by the relay.
"""

import concurrent.futures
import os
import time

import pytest

import playhooks
from playhooks.emulator import Emulator
from playhooks.testing import ManualClock

from helpers import FAST, wait_for
from redis_server import RedisServer, skip_unless_available
from relay_support import (
    EVENT,
    INGEST_KEY,
    PLAYCAMP_SECRET,
    PLAYER,
    PLAYFAB_SECRET,
    SECRETS,
    SESSIONS,
    RelayProcess,
    free_port,
    accepted,
    event,
    metrics,
    post,
    session,
    write_config,
)


def game_tracker(relay_url, spool, memory):
    """A shipped game's tracker: relay mode from its environment, no secret in it; ``memory``
    sees each payload as the game sent it."""
    environ = {"PLAYHOOKS_RELAY_URL": relay_url, "PLAYHOOKS_INGEST_KEY": INGEST_KEY}
    clock = ManualClock(wall=time.time() - 3600)
    tracker = playhooks.Tracker.from_env([memory], environ=environ, spool_dir=str(spool), retry=FAST, clock=clock)
    assert not any(secret in repr(tracker.sinks) for secret in SECRETS)
    return tracker


def play(tracker, players=3, events=4):
    for number in range(players):
        current = tracker.on_session_start(f"player-{number}", **PLAYER)
        for level in range(events):
            tracker.on_character_event("level_completed", body={"level": level}, session=current)
        tracker.settings.clock.advance(60)
        tracker.on_session_end(current)


def assert_arrived_as_sent(emulator, memory):
    assert emulator.wait_until(lambda e: len(e.sessions) == len(memory.sessions) and len(e.events) == len(memory.events), 20)
    by_id = {data["sessionId"]: data for data in emulator.sessions}
    assert by_id == {data["sessionId"]: data for data in memory.sessions}
    key = lambda data: data["Body"]["playhooks_event_id"]  # noqa: E731
    assert sorted(emulator.events, key=key) == sorted(memory.events, key=key)
    assert emulator.counters["duplicates"] == 0


@pytest.fixture
def emulator():
    with Emulator(playcamp_keys=[PLAYCAMP_SECRET], playfab_secret_keys=[PLAYFAB_SECRET]) as emulator:
        yield emulator


@pytest.fixture
def processes():
    started = []
    yield started
    for process in started:
        process.stop()


class TestServers:
    def test_under_waitress_sessions_and_events_arrive_exactly_as_the_game_sent_them(self, tmp_path, emulator, processes):
        relay = RelayProcess(write_config(tmp_path / "relay.toml", emulator.url), tmp_path / "spool")
        processes.append(relay)
        memory = playhooks.MemorySink()
        tracker = game_tracker(relay.url, tmp_path / "game", memory)
        play(tracker)
        assert tracker.close(10) == 0
        assert_arrived_as_sent(emulator, memory)
        assert relay.stop() == 0, relay.log()
        assert not any(secret in relay.log() for secret in (*SECRETS, INGEST_KEY))

    def test_under_gunicorn_with_two_workers_and_metrics_summed_over_both(self, tmp_path, emulator, processes):
        relay = RelayProcess(write_config(tmp_path / "relay.toml", emulator.url), tmp_path / "spool", server="gunicorn")
        processes.append(relay)
        memory = playhooks.MemorySink()
        tracker = game_tracker(relay.url, tmp_path / "game", memory)
        play(tracker)
        assert tracker.close(10) == 0
        # More, from many connections at once, so that both workers take some.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            send = lambda number: post(relay.url, EVENT, event(playfab_id=f"{number:016X}"), headers={"Connection": "close"})  # noqa: E731
            answers = list(pool.map(send, range(40)))
        assert all(answer.status == 200 for answer in answers)
        total = len(memory.events) + 40
        assert emulator.wait_until(lambda e: len(e.events) == total and len(e.sessions) == 3, 20)
        assert wait_for(lambda: accepted(metrics(relay.url), "playfab") == total, 10)
        for _ in range(6):  # whichever worker answers, the sum is the same
            assert accepted(metrics(relay.url), "playfab") == total
        folder = tmp_path / "spool" / "metrics"
        files = [name for name in os.listdir(folder) if name.endswith(".json")]
        assert sum(1 for name in files if "accepted" in (folder / name).read_text()) == 2, files
        assert relay.stop() == 0, relay.log()


class TestRestart:
    def test_a_relay_restarted_with_payloads_pending_and_the_upstream_down_delivers_each_once_when_it_is_back(self, tmp_path, processes):
        port = free_port()  # where the services will be, once they are back
        config = write_config(tmp_path / "relay.toml", f"http://127.0.0.1:{port}")
        relay = RelayProcess(config, tmp_path / "spool")
        processes.append(relay)
        memory = playhooks.MemorySink()
        tracker = game_tracker(relay.url, tmp_path / "game", memory)
        play(tracker, players=4, events=5)
        assert tracker.close(10) == 0  # the relay stored everything: the game has nothing pending
        relay.kill()  # at any line: it answered only what it had on disk
        again = RelayProcess(config, tmp_path / "spool")
        processes.append(again)
        assert wait_for(lambda: metrics(again.url).get(("playhooks_relay_pending", ("service", "playfab"))) == 20, 10)
        with Emulator(port=port, playcamp_keys=[PLAYCAMP_SECRET], playfab_secret_keys=[PLAYFAB_SECRET]) as emulator:
            assert_arrived_as_sent(emulator, memory)
            assert len(emulator.events) == 20 and len(emulator.sessions) == 4
            assert again.stop() == 0, again.log()


class TestRedis:
    def test_two_relays_share_redis_and_one_killed_mid_forwarding_leaves_its_sessions_to_the_other(self, tmp_path, emulator, processes):
        skip_unless_available()
        with RedisServer(tmp_path / "redis") as server:
            extra = f'\n[redis]\nurl = "{server.url}"\nreclaim_after = 1\n'
            config = write_config(tmp_path / "relay.toml", emulator.url, extra=extra)
            emulator.hang_next(1, route="playcamp", seconds=60)  # the first relay's request never returns
            first = RelayProcess(config, tmp_path / "first")
            processes.append(first)
            sent = [session(user=f"player-{number}") for number in range(5)]
            for data in sent:
                assert post(first.url, SESSIONS, data).status == 202
            assert emulator.wait_until(lambda e: e.in_flight["playcamp"] == 1, 10)  # mid-forwarding
            first.kill()
            second = RelayProcess(config, tmp_path / "second")
            processes.append(second)
            assert emulator.wait_until(lambda e: len(e.sessions) == 5, 20), second.log()
            assert sorted(data["sessionId"] for data in emulator.sessions) == sorted(data["sessionId"] for data in sent)
            assert emulator.counters["duplicates"] == 0  # no PlayCamp session counted twice
            assert post(second.url, EVENT, event()).status == 200
            assert emulator.wait_until(lambda e: len(e.events) == 1, 10)
            assert second.stop() == 0, second.log()
