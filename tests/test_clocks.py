"""The player sets the system clock while the game runs: delivery times do not move with it.

The wall clock is moved for real code's sake only through what it reads (``time.time`` and the
system clock object playhooks starts from): a test cannot set the machine's clock.
"""

import json
import os
import time

import pytest

from playhooks import _clock

from helpers import FAST, PLAYER, event_numbers, playfab_tracker, wait_for

DAY = 24 * 3600.0


@pytest.fixture
def wall(monkeypatch):
    """Move the wall clock by ``wall.jump(seconds)``; the monotonic clock goes on as it was."""

    class Wall:
        offset = 0.0

        def jump(self, seconds):
            self.offset += seconds

    moved = Wall()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + moved.offset)
    monkeypatch.setattr(_clock.SystemClock, "wall", staticmethod(lambda: real() + moved.offset))
    return moved


class TestWithinAProcess:
    def test_setting_the_date_days_ahead_during_an_outage_gives_up_nothing(self, emulator, spool, wall):
        """Ten days on the wall clock, seconds on the monotonic one: nothing is too old to send."""
        emulator.fail_next(100_000, 503)
        with playfab_tracker(emulator, spool, retry=FAST) as tracker:
            for number in range(20):
                tracker.on_character_event("level_completed", body={"n": number}, **PLAYER)
            tracker.flush(timeout=0.5)
            before = tracker.stats()["retried"]
            wall.jump(10 * DAY)
            # Every record fails again after the jump, and is kept for another try:
            assert wait_for(lambda: tracker.stats()["retried"] >= before + 40, timeout=10)
            emulator.reset()

            assert 0 == tracker.flush(timeout=30)
            assert (list(range(20)), {}) == (sorted(event_numbers(emulator)), tracker.stats()["dropped"])

    def test_setting_the_clock_back_after_a_retry_after_does_not_hold_the_service_back(self, emulator, spool, wall):
        """A 429 asking for one second, then the clock set back an hour: sent after about a second."""
        emulator.fail_next(1, 429, headers={"Retry-After": "1"}, route="playfab")
        with playfab_tracker(emulator, spool, retry=FAST) as tracker:
            tracker.on_character_event("level_completed", body={"n": 1}, **PLAYER)
            assert wait_for(lambda: tracker.stats()["retried"] == 1, timeout=10)
            wall.jump(-3600)

            assert 0 == tracker.flush(timeout=10)
            assert [1] == event_numbers(emulator)


class TestAcrossRestarts:
    def test_a_record_from_the_future_is_sent_now_and_ages_from_now(self, emulator, spool):
        """A record written while the clock was a year ahead (set back since): due now, not given
        up on, and its age counts from when this process first saw it."""
        ahead = time.time() + 365 * DAY
        queue = os.path.join(spool, "playfab", "queue")
        os.makedirs(queue)
        record = {"id": "from-the-future", "kind": "event", "attempts": 3, "created": ahead,
                  "data": {"EventName": "level_completed", "CharacterId": "c", "PlayFabId": "p", "Body": {"n": 7}}}
        with open(os.path.join(queue, f"{int(ahead * 1000)}-1-{int(ahead * 1000)}-0123456789ab.jsonl"), "w") as file:
            file.write(json.dumps(record) + "\n")
        emulator.fail_next(1, 503, route="playfab")

        with playfab_tracker(emulator, spool, retry=FAST) as tracker:
            assert 0 == tracker.flush(timeout=10)
            assert ([7], {}) == (event_numbers(emulator), tracker.stats()["dropped"])

    def test_payload_timestamps_stay_wall_clock(self, emulator, spool, wall):
        """Timestamps in payloads are the wall clock, as the APIs require: an event called after
        the clock moved a day ahead is dated by it."""
        wall.jump(DAY)
        with playfab_tracker(emulator, spool, retry=FAST) as tracker:
            tracker.on_character_event("level_completed", body={"n": 1}, **PLAYER)
            assert 0 == tracker.flush(timeout=10)

        assert time.strftime("%Y-%m-%d", time.gmtime(time.time())) == emulator.events[0]["Timestamp"][:10]
