"""The README's ten-line example, as a file you can run: ``python samples/quickstart.py``.

A "game" plays for a second and a half and completes a level; the session and the event it sends
are appended to ``telemetry.jsonl`` in the current directory, then printed with the tracker's stats.
"""

import pathlib
import time

import playhooks


def main() -> None:
    tracker = playhooks.Tracker(sinks=[playhooks.JsonlSink("telemetry.jsonl")])
    tracker.on_session_start("player-1", playfab_id="4F1C2A9B7D3E8A61", character_id="8D2E0F4B1A6C9E37")
    for _ in range(90):  # the game loop: 1.5 s at 60 frames a second
        time.sleep(1 / 60)
    tracker.on_character_event("level_completed", body={"level": 1, "stars": 3})
    tracker.on_session_end()  # a session under half a second of play is not sent
    tracker.close(timeout=2)  # delivers what is queued, within 2 s
    print(pathlib.Path("telemetry.jsonl").read_text(), end="")  # appended, one payload a line
    print(tracker.stats())


if __name__ == "__main__":
    main()
