"""Closing a tracker: a normal quit mid-backlog sends nothing twice, and hooks racing close() lose nothing."""

import collections
import subprocess
import sys
import textwrap
import threading

import playhooks

from helpers import PLAYER, ROOT, SECRET_KEY, event_numbers, playfab_tracker

QUITTER = textwrap.dedent(
    """
    import sys
    import threading
    import playhooks

    url, spool = sys.argv[1], sys.argv[2]
    tracker = playhooks.Tracker([playhooks.PlayFab("ABCD", SECRET_KEY, url)], spool_dir=spool)
    for number in range(200):
        tracker.on_character_event("level_completed", body={"n": number}, **PLAYER)
    waiting = threading.Event()
    for _ in range(2000):            # until the backlog is well under way (20 s at most)
        if tracker.stats().get("confirmed_by_service", 0) >= 10:
            break
        waiting.wait(0.01)
    print(tracker.close(timeout=0.3), flush=True)   # the player quits mid-backlog
    """
)


class TestANormalQuit:
    def test_quitting_while_a_backlog_drains_resends_nothing_on_the_next_run(self, emulator, spool):
        """The process quits with close() while events go out one request each: the next run
        sends only what the first did not, and close() counted exactly that as pending."""
        emulator.delay_next(100_000, seconds=0.02, route="playfab")
        script = f"SECRET_KEY = {SECRET_KEY!r}\nPLAYER = {PLAYER!r}\n" + QUITTER
        quitter = subprocess.run(
            [sys.executable, "-c", script, emulator.url, spool],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )
        delivered_by_first = len(emulator.events)
        pending_at_quit = int(quitter.stdout.split()[-1])

        with playfab_tracker(emulator, spool) as next_run:
            assert 0 == next_run.flush(timeout=30)
        sent = collections.Counter(event_numbers(emulator))

        twice = [n for n, count in sent.items() if count > 1]
        assert 0 < delivered_by_first < 200, "the quit must come mid-backlog"
        assert set(range(200)) == set(sent)
        # Only a request in flight when the process ended can be ambiguous: at most one.
        assert len(twice) <= 1, f"sent twice: {twice}"
        assert 200 - delivered_by_first == pending_at_quit - len(twice)


class CountingClock:
    """Every reading of the monotonic clock is a second later: each session has play to send."""

    def __init__(self):
        self._lock = threading.Lock()
        self._now = 0.0

    def monotonic(self):
        with self._lock:
            self._now += 1.0
            return self._now

    def wall(self):
        return 1_700_000_000.0


class TestHooksRacingClose:
    def test_a_session_started_while_close_runs_is_refused_or_delivered(self):
        """Eight threads start sessions (players joining a server) while close() runs: every
        session handed out is ended and delivered, every refusal counted; none is left open."""
        sink = playhooks.MemorySink()
        tracker = playhooks.Tracker(sinks=[sink], clock=CountingClock())
        started, refused = [], []
        playing = threading.Event()

        def player(number):
            for round_number in range(100_000):
                session = tracker.on_session_start(f"player-{number}-{round_number}")
                if session is None:
                    refused.append(number)
                    return
                started.append(session.id)
                if len(started) >= 400:
                    playing.set()

        threads = [threading.Thread(target=player, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        assert playing.wait(10)
        tracker.close(timeout=10)
        for thread in threads:
            thread.join(10)

        delivered = {session["sessionId"] for session in sink.sessions}
        assert [] == [session_id for session_id in started if session_id not in delivered]
        assert len(refused) == tracker.stats()["dropped"].get("tracker_closed", 0) == 8
        assert len(delivered) == len(started) > 0
