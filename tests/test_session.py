"""The session clock: active time, pauses, the idle timeout, wall-clock jumps, ending twice."""

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import playhooks

START = "2024-01-15T10:30:00.000Z"


def sent(tracker, sink):
    assert 0 == tracker.flush(timeout=5)
    return sink.sessions


def parse(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


class TestDuration:
    def test_active_time_is_the_duration(self, tracker, sink, clock):
        """A session of 90 s with no pause sends durationSeconds 90 and dates it from the wall clock."""
        tracker.on_session_start("p1")
        clock.advance(90)
        tracker.on_session_end()

        [session] = sent(tracker, sink)
        assert (90, START, "2024-01-15T10:31:30.000Z") == (
            session["durationSeconds"],
            session["startedAt"],
            session["endedAt"],
        )

    def test_pauses_are_excluded(self, tracker, sink, clock):
        """Paused time counts towards endedAt but not towards durationSeconds."""
        tracker.on_session_start("p1")
        clock.advance(30)
        tracker.on_session_pause()
        clock.advance(100)
        tracker.on_session_resume()
        clock.advance(20)
        tracker.on_session_pause()
        clock.advance(5)
        tracker.on_session_resume()
        clock.advance(10)
        tracker.on_session_end()

        [session] = sent(tracker, sink)
        assert (60, "2024-01-15T10:32:45.000Z") == (session["durationSeconds"], session["endedAt"])

    def test_pause_and_resume_are_idempotent(self, tracker, sink, clock):
        """A second pause does not restart the pause; a second resume does not count twice."""
        tracker.on_session_start("p1")
        clock.advance(10)
        tracker.on_session_pause()
        clock.advance(10)
        tracker.on_session_pause()
        clock.advance(10)
        tracker.on_session_resume()
        tracker.on_session_resume()
        clock.advance(10)
        tracker.on_session_end()

        assert 20 == sent(tracker, sink)[0]["durationSeconds"]

    def test_ending_while_paused_ends_at_the_pause(self, tracker, sink, clock):
        """The player stopped playing when the pause began: that is when the session ended."""
        tracker.on_session_start("p1")
        clock.advance(40)
        tracker.on_session_pause()
        clock.advance(100)
        tracker.on_session_end()

        [session] = sent(tracker, sink)
        assert (40, "2024-01-15T10:30:40.000Z") == (session["durationSeconds"], session["endedAt"])

    @pytest.mark.parametrize(
        ("active", "expected"),
        [(1.0, 1), (1.49, 1), (1.5, 2), (59.5, 60), (0.5, 1)],
    )
    def test_rounds_half_up(self, tracker, sink, clock, active, expected):
        """Active seconds are rounded to the nearest second, halves up."""
        tracker.on_session_start("p1")
        clock.advance(active)
        tracker.on_session_end()

        assert expected == sent(tracker, sink)[0]["durationSeconds"]

    def test_under_half_a_second_is_dropped_and_counted(self, tracker, sink, clock):
        """PlayCamp needs >= 1 s; a shorter session is counted, not sent, and not inflated to 1 s."""
        tracker.on_session_start("p1")
        clock.advance(0.49)
        tracker.on_session_end()

        assert [] == sent(tracker, sink)
        assert {"session_too_short": 1} == tracker.stats()["dropped"]

    def test_milliseconds_are_kept_and_truncated(self, sink):
        """startedAt keeps the wall clock's milliseconds; endedAt adds the elapsed time to them."""
        clock = playhooks.testing.ManualClock(wall=datetime(2024, 1, 15, 10, 30, 0, 123999, tzinfo=timezone.utc))
        with playhooks.Tracker(sinks=[sink], clock=clock) as tracker:
            tracker.on_session_start("p1")
            clock.advance(2.0009)
            tracker.on_session_end()
            [session] = sent(tracker, sink)

        assert ("2024-01-15T10:30:00.123Z", "2024-01-15T10:30:02.123Z") == (
            session["startedAt"],
            session["endedAt"],
        )


class TestWallClockJumps:
    @pytest.mark.parametrize("jump", [-3600.0, -5.0, 7200.0], ids=["back-an-hour", "back-5s", "forward-2h"])
    def test_end_is_derived_from_elapsed_time(self, tracker, sink, clock, jump):
        """A system clock set back or forward mid-session changes neither endedAt nor the duration."""
        tracker.on_session_start("p1")
        clock.advance(30)
        clock.jump_wall(jump)
        clock.advance(30)
        tracker.on_session_end()

        [session] = sent(tracker, sink)
        assert (60, "2024-01-15T10:31:00.000Z") == (session["durationSeconds"], session["endedAt"])
        assert parse(session["endedAt"]) >= parse(session["startedAt"])

    def test_a_new_session_after_a_jump_reads_the_new_wall_time(self, tracker, sink, clock):
        """The wall clock is read at each start, so the next session carries the corrected time."""
        clock.jump_wall(-3600)
        tracker.on_session_start("p1")
        clock.advance(5)
        tracker.on_session_end()

        assert "2024-01-15T09:30:00.000Z" == sent(tracker, sink)[0]["startedAt"]


class TestIdleTimeout:
    def test_a_long_pause_ends_the_session_at_the_pause(self, sink, clock):
        """Past the idle timeout, the session ends when the pause began and resume starts a new one."""
        with playhooks.Tracker(sinks=[sink], clock=clock, idle_timeout=60) as tracker:
            session = tracker.on_session_start("p1", platform="Web")
            first_id = session.id
            clock.advance(100)
            tracker.on_session_pause()
            clock.advance(61)
            tracker.on_session_resume()
            clock.advance(30)
            tracker.on_session_end()
            first, second = sent(tracker, sink)

        assert (first_id, 100, "2024-01-15T10:31:40.000Z") == (
            first["sessionId"],
            first["durationSeconds"],
            first["endedAt"],
        )
        assert (session.id, 30, "2024-01-15T10:32:41.000Z", "Web") == (
            second["sessionId"],
            second["durationSeconds"],
            second["startedAt"],
            second["platform"],
        )
        assert first_id != session.id

    def test_a_pause_of_exactly_the_timeout_continues(self, sink, clock):
        """The session splits only when the pause is longer than the timeout."""
        with playhooks.Tracker(sinks=[sink], clock=clock, idle_timeout=60) as tracker:
            tracker.on_session_start("p1")
            clock.advance(10)
            tracker.on_session_pause()
            clock.advance(60)
            tracker.on_session_resume()
            clock.advance(10)
            tracker.on_session_end()
            sessions = sent(tracker, sink)

        assert [20] == [session["durationSeconds"] for session in sessions]

    def test_default_idle_timeout_is_five_minutes(self):
        """The documented default."""
        assert 300.0 == playhooks.Settings().idle_timeout


class TestEnding:
    def test_ending_twice_sends_once(self, tracker, sink, clock):
        """A second end, with the handle or without, sends nothing more and raises nothing."""
        session = tracker.on_session_start("p1")
        clock.advance(5)
        tracker.on_session_end()
        tracker.on_session_end()
        tracker.on_session_end(session)

        assert 1 == len(sent(tracker, sink))
        assert session.ended

    def test_hooks_on_an_ended_session_change_nothing(self, tracker, sink, clock):
        """Pausing or resuming an ended session is harmless."""
        session = tracker.on_session_start("p1")
        clock.advance(5)
        tracker.on_session_end()
        tracker.on_session_pause(session)
        tracker.on_session_resume(session)

        assert [5] == [s["durationSeconds"] for s in sent(tracker, sink)]

    def test_close_ends_open_sessions(self, sink, clock):
        """Closing the tracker is the end of the game: open sessions end and are sent."""
        tracker = playhooks.Tracker(sinks=[sink], clock=clock)
        tracker.on_session_start("p1")
        tracker.on_session_start("p2")
        clock.advance(12)

        assert 0 == tracker.close(timeout=5)
        assert {("p1", 12), ("p2", 12)} == {(s["userId"], s["durationSeconds"]) for s in sink.sessions}

    def test_starting_again_for_a_user_ends_the_open_session(self, tracker, sink, clock):
        """One user plays one session at a time; a second start ends the first, so no time counts twice."""
        first = tracker.on_session_start("p1")
        clock.advance(10)
        second = tracker.on_session_start("p1")
        clock.advance(20)
        tracker.on_session_end(second)

        assert [(first.id, 10), (second.id, 20)] == [
            (s["sessionId"], s["durationSeconds"]) for s in sent(tracker, sink)
        ]


class TestManySessions:
    def test_concurrent_sessions_are_timed_separately(self, tracker, sink, clock):
        """A game server's players start, pause and end independently."""
        sessions = {user: tracker.on_session_start(user) for user in ("a", "b", "c")}
        clock.advance(10)
        tracker.on_session_pause(sessions["b"])
        clock.advance(10)
        tracker.on_session_end(sessions["a"])
        tracker.on_session_resume(sessions["b"])
        clock.advance(10)
        tracker.on_session_end(sessions["b"])
        tracker.on_session_end(sessions["c"])

        durations = {s["userId"]: s["durationSeconds"] for s in sent(tracker, sink)}
        assert {"a": 20, "b": 20, "c": 30} == durations

    def test_session_ids_are_unique(self, tracker, sink, clock):
        """Every session gets its own sessionId, the key PlayCamp deduplicates on."""
        for user in range(200):
            tracker.on_session_start(f"user-{user}")
        clock.advance(1)
        tracker.close(timeout=5)

        assert 200 == len({s["sessionId"] for s in sink.sessions})

    def test_hooks_from_many_threads(self, tracker, sink, clock):
        """Players on their own threads: every session and event arrives exactly once."""
        started = threading.Barrier(9)
        played = threading.Barrier(9)

        def play(user):
            session = tracker.on_session_start(user, playfab_id=f"pf-{user}", character_id="c")
            for number in range(50):
                tracker.on_character_event("coin_collected", body={"n": number}, session=session)
            started.wait()
            played.wait()
            tracker.on_session_end(session)

        threads = [threading.Thread(target=play, args=(f"u{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        started.wait()
        clock.advance(3)
        played.wait()
        for thread in threads:
            thread.join()

        assert 0 == tracker.flush(timeout=5)
        assert [3] * 8 == [session["durationSeconds"] for session in sink.sessions]
        assert 400 == len({event["Body"]["playhooks_event_id"] for event in sink.events})
        assert {f"pf-u{n}" for n in range(8)} == {event["PlayFabId"] for event in sink.events}

    def test_session_none_is_ambiguous_with_several_open(self, strict_tracker, clock):
        """With two sessions open, a hook must be told which one."""
        strict_tracker.on_session_start("a")
        strict_tracker.on_session_start("b")

        with pytest.raises(playhooks.PayloadError, match="session: is required: 2 sessions are open"):
            strict_tracker.on_session_end()

    def test_the_sole_session_is_found_again_after_others_end(self, tracker, sink, clock):
        """When all but one session have ended, session=None means that one again."""
        tracker.on_session_start("a")
        b = tracker.on_session_start("b")
        tracker.on_session_end(b)
        clock.advance(4)
        tracker.on_session_end()

        assert [("a", 4)] == [(s["userId"], s["durationSeconds"]) for s in sent(tracker, sink)]


class TestSessionHandle:
    def test_active_seconds_reads_the_clock(self, tracker, clock):
        """A handle reports its active time, for overlays and debugging."""
        session = tracker.on_session_start("p1")
        clock.advance(10)
        tracker.on_session_pause()
        clock.advance(10)

        assert (10.0, True, False) == (session.active_seconds, session.paused, session.ended)

    def test_started_at_is_utc(self, tracker, sink, clock):
        """startedAt is the UTC wall clock, whatever the local zone."""
        tracker.on_session_start("p1")
        clock.advance(1)
        tracker.on_session_end()

        started = parse(sent(tracker, sink)[0]["startedAt"])
        assert timedelta(0) == started.utcoffset()

    def test_id_is_a_random_uuid(self, tracker):
        """A session's id, its PlayCamp sessionId, is a version 4 UUID written the standard way, new each time."""
        ids = [tracker.on_session_start(f"p{number}").id for number in range(50)]

        parsed = [uuid.UUID(text) for text in ids]
        assert ids == [str(value) for value in parsed]
        assert {(4, uuid.RFC_4122)} == {(value.version, value.variant) for value in parsed}
        assert 50 == len(set(ids))
