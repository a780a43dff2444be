"""Keys never leave the sinks: not even when a server echoes them back in an error."""

import logging
import os

import pytest

import playhooks
from playhooks.testing import ManualClock

from helpers import API_KEY, FAST, PLAYER, SECRET_KEY, sinks

ECHOES = {  # what a misconfigured proxy might answer, quoting the request's headers
    "playcamp": {"error": f"Bad Request: Authorization: Bearer {API_KEY}", "code": "BAD_REQUEST"},
    "playfab": {"code": 400, "status": "BadRequest", "error": "InvalidParams", "errorCode": 1000,
                "errorMessage": f"headers were X-SecretKey: {SECRET_KEY}"},
}


def everything_stored(spool):
    for root, _, names in os.walk(spool):
        for name in names:
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as file:
                yield file.read()


@pytest.mark.parametrize("status", [400, 503])
def test_a_key_echoed_by_the_server_is_scrubbed_everywhere(emulator, spool, caplog, status):
    """Refused (400: dead-lettered) or failing (503: retried), the echoed keys reach neither
    stats(), the log, nor any file in the spool."""
    caplog.set_level(logging.DEBUG, logger="playhooks")
    for route, body in ECHOES.items():
        emulator.fail_next(1, status, route=route, body=body)
    with playhooks.Tracker(sinks(emulator), spool_dir=spool, retry=FAST, clock=ManualClock()) as tracker:
        session = tracker.on_session_start("player-1", **PLAYER)
        tracker.on_character_event("level_completed", **PLAYER)
        tracker.settings.clock.advance(30)
        tracker.on_session_end(session)
        tracker.flush(timeout=10)
        seen = [str(tracker.stats()), caplog.text, *everything_stored(spool)]

    secret_part = API_KEY.split(":")[1]
    assert "[redacted]" in str(tracker.stats()["last_error"])
    assert [] == [text for text in seen if API_KEY in text or secret_part in text or SECRET_KEY in text]
