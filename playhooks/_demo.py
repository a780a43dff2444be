"""``playhooks demo``: a simulated play session, start to end, with the payloads it produces.

The clock is simulated, so a 25-minute session takes no time; everything else is the real path:
the hooks, the worker thread, the models and the wire format.
"""

import json
import time
from typing import TextIO

from ._sinks import MemorySink
from ._tracker import Tracker
from .testing import ManualClock


def run(out: TextIO) -> int:
    clock = ManualClock(wall=time.time())
    sink = MemorySink()
    with Tracker(sinks=[sink], clock=clock) as tracker:
        tracker.on_session_start(
            "player-42", platform="Other", playfab_id="4F1C2A9B7D3E8A61", character_id="8D2E0F4B1A6C9E37"
        )
        for level in (1, 2, 3):
            clock.advance(240)
            tracker.on_character_event("coin_collected", body={"level": level, "coins": 10 * level})
            clock.advance(180)
            tracker.on_character_event("level_completed", body={"level": level, "seconds": 420})
        tracker.on_session_pause()  # the player switches away for two minutes: not playtime
        clock.advance(120)
        tracker.on_session_resume()
        clock.advance(60)
        tracker.on_character_event("player_died", body={"level": 4, "cause": "lava"})
        tracker.on_session_end()
        tracker.flush(timeout=5)
    out.write(f"{len(sink.sessions)} PlayCamp session, POST /v1/server/playtime/sessions:\n")
    for session in sink.sessions:
        out.write(json.dumps(session, indent=2) + "\n")
    out.write(f"\n{len(sink.events)} PlayFab character events, POST /Server/WriteCharacterEvent:\n")
    for event in sink.events:
        out.write(json.dumps(event) + "\n")
    return 0
