"""Relay mode on the game's side: a tracker that holds an ingest key and no server secret."""

import time

import pytest

import playhooks
from playhooks import ConfigurationError
from playhooks.testing import ManualClock

from helpers import FAST, PLAYER
from relay_support import INGEST_KEY, SECRETS, accepted, metrics


class TestTrackerArguments:
    def test_relay_url_and_ingest_key_send_both_services_to_the_relay(self, tmp_path):
        tracker = playhooks.Tracker(relay_url="https://relay.example.com", ingest_key=INGEST_KEY, spool_dir=str(tmp_path))
        try:
            assert [(sink.name, sink.base_url, sink.relay) for sink in tracker.sinks] == [
                ("playcamp", "https://relay.example.com", True),
                ("playfab", "https://relay.example.com", True),
            ]
            assert INGEST_KEY not in repr(tracker)
        finally:
            tracker.close(1)

    @pytest.mark.parametrize("arguments", [{"relay_url": "https://relay.example.com"}, {"ingest_key": INGEST_KEY}])
    def test_one_without_the_other_is_refused(self, arguments):
        with pytest.raises(ConfigurationError, match="relay_url and ingest_key go together"):
            playhooks.Tracker(**arguments)

    def test_a_relay_over_plain_http_must_be_this_machine(self):
        with pytest.raises(ConfigurationError, match="base_url: must use https"):
            playhooks.Tracker(relay_url="http://relay.example.com", ingest_key=INGEST_KEY)

    def test_an_ingest_key_beside_a_server_key_is_refused(self):
        with pytest.raises(ConfigurationError, match="instead of the server key"):
            playhooks.PlayCamp("key-1:secret", "https://relay.example.com", ingest_key=INGEST_KEY)

    def test_an_ingest_key_needs_the_relays_url(self):
        with pytest.raises(ConfigurationError, match="give the relay's URL"):
            playhooks.PlayCamp(ingest_key=INGEST_KEY)
        with pytest.raises(ConfigurationError, match="give the relay's URL"):
            playhooks.PlayFab(ingest_key=INGEST_KEY)


class TestFromEnv:
    RELAY = {"PLAYHOOKS_RELAY_URL": "https://relay.example.com", "PLAYHOOKS_INGEST_KEY": INGEST_KEY}

    def test_the_two_variables_make_relay_mode(self, tmp_path):
        tracker = playhooks.Tracker.from_env(environ=self.RELAY, spool_dir=str(tmp_path))
        try:
            assert [sink.relay for sink in tracker.sinks] == [True, True]
        finally:
            tracker.close(1)

    @pytest.mark.parametrize("missing", ["PLAYHOOKS_RELAY_URL", "PLAYHOOKS_INGEST_KEY"])
    def test_one_without_the_other_names_both(self, missing):
        environ = {name: value for name, value in self.RELAY.items() if name != missing}
        with pytest.raises(ConfigurationError, match="PLAYHOOKS_RELAY_URL and PLAYHOOKS_INGEST_KEY go together"):
            playhooks.Tracker.from_env(environ=environ)

    def test_a_server_secret_beside_the_relay_is_refused_without_showing_it(self):
        environ = {**self.RELAY, "PLAYHOOKS_PLAYFAB_TITLE_ID": "ABCD", "PLAYHOOKS_PLAYFAB_SECRET_KEY": SECRETS[1]}
        with pytest.raises(ConfigurationError) as caught:
            playhooks.Tracker.from_env(environ=environ)
        assert "PLAYHOOKS_PLAYFAB_SECRET_KEY" in str(caught.value) and SECRETS[1] not in str(caught.value)

    def test_a_malformed_ingest_key_names_its_variable(self):
        with pytest.raises(ConfigurationError, match="PLAYHOOKS_INGEST_KEY: must be"):
            playhooks.Tracker.from_env(environ={**self.RELAY, "PLAYHOOKS_INGEST_KEY": "two words"})


class TestThroughTheRelay:
    def test_a_tracker_in_relay_mode_delivers_through_an_in_process_relay(self, make_relay, emulator, tmp_path):
        relay = make_relay()
        clock = ManualClock(wall=time.time() - 600)
        tracker = playhooks.Tracker(relay_url=relay.url, ingest_key=INGEST_KEY, spool_dir=str(tmp_path / "game"), retry=FAST, clock=clock)
        tracker.on_session_start("player-1", **PLAYER)
        tracker.on_character_event("chapter_completed", body={"chapter": 1})
        clock.advance(120)
        tracker.on_session_end()
        assert tracker.close(10) == 0
        assert emulator.wait_until(lambda e: len(e.sessions) == 1 and len(e.events) == 1, 10)
        assert emulator.sessions[0]["durationSeconds"] == 120
        values = metrics(relay.url)
        assert (accepted(values, "playcamp"), accepted(values, "playfab")) == (1, 1)
