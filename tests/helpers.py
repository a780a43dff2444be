"""What the delivery tests share: keys, ids, sinks aimed at an emulator, and a way to wait."""

import os
import threading
import time

import playhooks

API_KEY = "key-1:very-secret-playcamp-value"
SECRET_KEY = "VERYSECRETPLAYFABKEY0123456789"
PLAYER = {"playfab_id": "4F1C2A9B7D3E8A61", "character_id": "8D2E0F4B1A6C9E37"}
# Retries in milliseconds, and never given up on: a test that is not about giving up must not
# lose records to max_attempts when a slow machine lets many retries pass.
FAST = playhooks.RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=10_000)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sinks(emulator, **playcamp):
    return [
        playhooks.PlayCamp(API_KEY, emulator.url, **playcamp),
        playhooks.PlayFab("ABCD", SECRET_KEY, emulator.url),
    ]


def playfab_tracker(emulator, spool, **settings):
    """A tracker with a PlayFab sink alone, sending to ``emulator`` through ``spool``."""
    return playhooks.Tracker([playhooks.PlayFab("ABCD", SECRET_KEY, emulator.url)], spool_dir=spool, **settings)


def play(tracker, user="player-1", seconds=30, events=("level_completed",)):
    """A session with events, on the tracker's ManualClock."""
    session = tracker.on_session_start(user, **PLAYER)
    for name in events:
        tracker.on_character_event(name, body={"user": user}, session=session)
    tracker.settings.clock.advance(seconds)
    tracker.on_session_end(session)
    return session


def wait_for(condition, timeout, poll=0.01):
    """Wait until ``condition()`` is true, for at most ``timeout`` seconds; returns its last value.

    For what no event announces (a file another thread writes): the wait ends as soon as the
    condition holds, and the test asserts on what it returns.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        pause.wait(poll)


def event_numbers(emulator):
    """The ``n`` of each event the emulator accepted, in arrival order."""
    return [event["Body"]["n"] for event in emulator.events if "n" in event.get("Body", {})]


class ServedInThread:
    """A WSGI application served by waitress on a thread of the test's process."""

    def __init__(self, app):
        import waitress

        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, asyncore_loop_timeout=0.05)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            self.server.run()
        except (OSError, ValueError):  # a descriptor closed under the loop by stop(): it is ending
            if not self._stopping:
                raise

    def stop(self):
        self._stopping = True
        self.server.close()
        self.server.task_dispatcher.shutdown()
        for channel in list(self.server._map.values()):  # the loop ends once nothing is left to watch
            channel.close()
        self._thread.join(5)
