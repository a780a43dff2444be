"""The module-level hooks, for scripts and Ren'Py: one default tracker, replaceable and resettable."""

import json
import subprocess
import sys

import playhooks
from playhooks import _default
from playhooks.testing import ManualClock


class TestDefaultTracker:
    def test_module_hooks_use_the_configured_tracker(self):
        """configure() makes the tracker the module-level hooks talk to."""
        clock, sink = ManualClock(), playhooks.MemorySink()
        tracker = playhooks.configure(sinks=[sink], clock=clock)
        playhooks.on_session_start("p1", playfab_id="P", character_id="C")
        playhooks.on_character_event("level_completed", body={"level": 1})
        playhooks.on_session_pause()
        clock.advance(50)
        playhooks.on_session_resume()
        clock.advance(10)
        playhooks.on_session_end()

        assert 0 == tracker.flush(timeout=5)
        assert ([10], ["level_completed"]) == (
            [s["durationSeconds"] for s in sink.sessions],
            [e["EventName"] for e in sink.events],
        )

    def test_configure_again_closes_the_previous_tracker(self):
        """The old tracker's open sessions end and are delivered to its own sinks."""
        clock, old_sink = ManualClock(), playhooks.MemorySink()
        old = playhooks.configure(sinks=[old_sink], clock=clock)
        playhooks.on_session_start("p1")
        clock.advance(5)
        new = playhooks.configure(sinks=[playhooks.MemorySink()], clock=clock)

        old.on_character_event("x")

        assert new is not old
        assert [5] == [s["durationSeconds"] for s in old_sink.sessions]
        assert {"tracker_closed": 1} == old.stats()["dropped"]

    def test_reset_forgets_the_tracker(self):
        """After reset() the next hook makes a fresh default tracker."""
        first = playhooks.configure()
        playhooks.reset()

        assert _default.default_tracker() is not first

    def test_hooks_before_configure_count_what_they_drop(self):
        """With no sinks configured nothing is sent, and the stats say so."""
        playhooks.on_character_event("x", playfab_id="P", character_id="C")
        tracker = _default.default_tracker()
        tracker.flush(timeout=5)

        assert {"no_sink": 1} == tracker.stats()["dropped"]


def test_the_default_tracker_is_closed_at_exit(tmp_path):
    """A script that never calls close() still delivers: the atexit handler ends and flushes."""
    path = tmp_path / "out.jsonl"
    script = (
        "import playhooks, playhooks.testing\n"
        "clock = playhooks.testing.ManualClock()\n"
        f"playhooks.configure(sinks=[playhooks.JsonlSink({str(path)!r})], flush_interval=3600, clock=clock)\n"
        "playhooks.on_session_start('p1', playfab_id='P', character_id='C')\n"
        "playhooks.on_character_event('quit_pressed')\n"
        "clock.advance(30)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    payloads = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [("quit_pressed", None), (None, 30)] == [
        (payload.get("EventName"), payload.get("durationSeconds")) for payload in payloads
    ]
