"""One "game" of the chaos soak (``soak.py``): a real Tracker with real PlayCamp and PlayFab sinks.

    python tests/benchmarks/soak_game.py '<json config>'

It plays sessions of a second or a few, at 30 frames a second with a few character events a
frame, until it is killed (the soak's SIGKILL), or until it quits cleanly after the sessions its
config names (``close()``, then exit). Now and then it calls ``flush(timeout)``. With
``"drain": true`` it plays nothing: it opens a tracker on the spool, flushes until nothing is
pending (or its time is up) and closes, as the next start of a game would.

What its hooks accepted, and when, it appends to its log, one line per step, each written with one
``os.write`` after the hooks returned, on the monotonic clock (which Linux shares between
processes, so the soak compares those times with the moment of its kill). A line in the kernel's
page cache outlives a SIGKILL, so no fsync is needed: the soak kills processes, not the machine.

Lines (times are ``time.monotonic()``):

    ready T
    tracker T                            the Tracker is made
    starting USER T                      before on_session_start (its id is known only after)
    start SESSION_ID USER T_BEFORE T_AFTER
    events TAG FIRST END T               events FIRST..END-1, body {"g": TAG, "n": N}, accepted by T
    end SESSION_ID T_BEFORE T_AFTER
    stalled SECONDS T                    a frame woke this late (the process was starved of the CPU)
    flush T_BEFORE REMAINING T_AFTER     a flush(timeout); REMAINING 0 confirms all accepted before it
    closing T                            close() called: it ends the open sessions
    closed REMAINING T
    inflight KIND ID                     a record still claimed by this process once close() returned
    drained REMAINING STATS_JSON         (drain only)
"""

import json
import os
import random
import sys
import time

import playhooks

FPS = 30
EVENTS_PER_FRAME = (0, 3)  # at random, inclusive
SESSION_SECONDS = (0.8, 3.0)  # at random: at least half a second of play, so none is too short to send
GAP_SECONDS = (0.0, 0.3)  # between two sessions
STALLED = 0.05  # a frame that wakes this late is logged: the soak reads it as the machine's doing
FLUSH_EVERY = 3  # sessions between two flush(timeout) calls
FLUSH_TIMEOUT = 1.0
CLOSE_TIMEOUT = 2.0
DRAIN_STEP = 5.0  # seconds per flush of a drain, until nothing is pending or its time is up
PLAYER = {"playfab_id": "4F1C2A9B7D3E8A61", "character_id": "8D2E0F4B1A6C9E37"}


class Log:
    """Append-only lines, each one write: a SIGKILL leaves whole lines only (the soak ignores a torn last one)."""

    def __init__(self, path):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def say(self, *words):
        os.write(self._fd, (" ".join(map(str, words)) + "\n").encode())


def make_tracker(config):
    settings = config["settings"]
    retry = playhooks.RetryPolicy(**settings["retry"])
    sinks = [playhooks.PlayCamp("soak:secret", config["url"]), playhooks.PlayFab("ABCD", "secret", config["url"])]
    options = {name: value for name, value in settings.items() if name != "retry"}
    return playhooks.Tracker(sinks, spool_dir=config["spool"], retry=retry, **options)


def play(tracker, config, log):
    """Sessions until killed, or until ``quit_after`` sessions have ended (then close and return)."""
    rng = random.Random(config["seed"])
    tag, user, quit_after = config["tag"], config["user"], config.get("quit_after")
    counter = 0
    sessions = 0
    while quit_after is None or sessions < quit_after:
        log.say("starting", user, time.monotonic())
        before = time.monotonic()
        session = tracker.on_session_start(user, **PLAYER)
        log.say("start", session.id, user, before, time.monotonic())
        frame = time.monotonic()
        end = frame + rng.uniform(*SESSION_SECONDS)
        while time.monotonic() < end:
            count = rng.randint(*EVENTS_PER_FRAME)
            for number in range(counter, counter + count):
                tracker.on_character_event("soak_tick", body={"g": tag, "n": number}, session=session)
            if count:
                log.say("events", tag, counter, counter + count, time.monotonic())
                counter += count
            frame += 1 / FPS
            time.sleep(max(0.0, frame - time.monotonic()))  # the game's frame pacing
            woke = time.monotonic()
            if woke - frame > STALLED:
                log.say("stalled", round(woke - frame, 3), woke)
        before = time.monotonic()
        tracker.on_session_end(session)
        log.say("end", session.id, before, time.monotonic())
        sessions += 1
        if sessions % FLUSH_EVERY == 0:
            before = time.monotonic()
            remaining = tracker.flush(timeout=FLUSH_TIMEOUT)
            log.say("flush", before, remaining, time.monotonic())
        time.sleep(rng.uniform(*GAP_SECONDS))
    if quit_after is not None:
        log.say("starting", user, time.monotonic())  # a last session, left open for close() to end
        before = time.monotonic()
        session = tracker.on_session_start(user, **PLAYER)
        log.say("start", session.id, user, before, time.monotonic())
        time.sleep(rng.uniform(*SESSION_SECONDS))


def claimed_by_this_process(spool):
    """(kind, id) of the records this process still holds in ``claimed/``: a request for them may be
    in flight, abandoned by the exit, and answered after it."""
    prefix = f"{os.getpid()}."
    found = []
    for destination in ("playcamp", "playfab"):
        folder = os.path.join(spool, destination, "claimed")
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            if name.startswith(prefix):
                found.extend(records_of(os.path.join(folder, name)))
    return found


def records_of(path):
    """(kind, id) of each record of a spool file: ``session`` and its sessionId, ``event`` and its
    playhooks_event_id."""
    found = []
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                try:
                    data = json.loads(line)["data"]
                except (ValueError, KeyError, TypeError):
                    continue  # a file being written: only whole records count
                if "sessionId" in data:
                    found.append(("session", data["sessionId"]))
                elif isinstance(data.get("Body"), dict) and "playhooks_event_id" in data["Body"]:
                    found.append(("event", data["Body"]["playhooks_event_id"]))
    except OSError:
        pass  # settled meanwhile
    return found


def drain(tracker, config, log):
    deadline = time.monotonic() + config["drain_timeout"]
    remaining = tracker.flush(timeout=DRAIN_STEP)
    while remaining and time.monotonic() < deadline:
        remaining = tracker.flush(timeout=min(DRAIN_STEP, max(0.1, deadline - time.monotonic())))
    remaining = tracker.close(timeout=CLOSE_TIMEOUT)
    stats = {key: value for key, value in tracker.stats().items() if key not in ("last_error", "spool_folder")}
    log.say("drained", remaining, json.dumps(stats, separators=(",", ":")))


def main():
    config = json.loads(sys.argv[1])
    log = Log(config["log"])
    log.say("ready", time.monotonic())
    tracker = make_tracker(config)
    log.say("tracker", time.monotonic())
    if config.get("drain"):
        drain(tracker, config, log)
        return
    play(tracker, config, log)
    log.say("closing", time.monotonic())
    remaining = tracker.close(timeout=CLOSE_TIMEOUT)
    log.say("closed", remaining, time.monotonic())
    for kind, record_id in claimed_by_this_process(config["spool"]):
        log.say("inflight", kind, record_id)


if __name__ == "__main__":
    main()
