"""The README's ten-line example, as a file you can run: ``python samples/quickstart.py``.

It writes what a short session sends to ``telemetry.jsonl`` in the current directory.
"""

import playhooks


def main() -> None:
    tracker = playhooks.Tracker(sinks=[playhooks.JsonlSink("telemetry.jsonl")])
    tracker.on_session_start("player-1", playfab_id="4F1C2A9B7D3E8A61", character_id="8D2E0F4B1A6C9E37")
    tracker.on_character_event("level_completed", body={"level": 1, "stars": 3})
    tracker.on_session_pause()  # the window lost focus: paused time is not playtime
    tracker.on_session_resume()
    tracker.on_session_end()  # sessions shorter than half a second are counted, not sent
    tracker.close(timeout=2)
    print(tracker.stats())


if __name__ == "__main__":
    main()
