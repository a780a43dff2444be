"""Delivery under load: the game thread's hook latency while a backlog drains, throughput, memory.

    python tests/benchmarks/bench_delivery.py            # the full run (a minute or two)
    python tests/benchmarks/bench_delivery.py --quick    # a smoke run, as the test suite does

The emulator runs in its own process (``playhooks emulate``), as a real service would be, so only
the tracker's own threads share this process's GIL with the "game". Every number is from this one
run; compare the rows with each other.

Each backlog is written by a tracker whose requests are held, 60 events a round, each round in the
spool before the next (a game emitting over time); the line under each table says how many were
asked for, spooled and dropped. (Until issue 9 the filler emitted all at once, so the "20k backlog"
held only the 10,000 the in-memory queue takes, the rest dropped as ``queue_full``.) Another
checkout: ``PYTHONPATH=/tmp/bench-old python tests/benchmarks/bench_delivery.py``.
"""

import argparse
import os
import sys
import time

import playhooks
from playhooks.testing import ManualClock

import _support
from _support import PLAYER, spool_folder

BODY = {"level": 3, "coins": 120}
FILL_CHUNK = 60  # events a filler round: 10 a frame at 60 fps, one round per default flush_interval


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(samples):
    ordered = sorted(samples)
    return [ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000 for q in (0.5, 0.99, 0.999)]


def backlog(spool, fill, **settings):
    """A spool of never-attempted records, written by a tracker whose requests are held (see
    ``_support.held_tracker``); what was spooled and dropped, printed, so a short backlog shows."""
    settings = {**_support.filler_settings(FILL_CHUNK), **settings}
    with _support.held_tracker(spool, playcamp=True, **settings) as filler:
        asked, spooled = fill(filler)
        lost = _support.dropped(filler)
    print(f"    (backlog: {asked} asked, {spooled} spooled, dropped: {lost or 'none'})")
    return spooled


def tracker_for(emulator, spool, **settings):
    settings.setdefault("retry", playhooks.RetryPolicy(base_delay=0.05, max_delay=0.1, max_attempts=10_000))
    return playhooks.Tracker(
        [playhooks.PlayCamp("key:secret", emulator.url), playhooks.PlayFab("ABCD", "secret", emulator.url)],
        spool_dir=spool,
        **settings,
    )


def hook_latency(emulator, size, frames):
    """Per-call hook time at 10 events a frame: idle worker, then while a backlog drains."""
    clock = time.perf_counter_ns
    results = {}
    for label in ("worker idle", "worker draining a backlog"):
        with spool_folder() as spool:
            if label != "worker idle":
                backlog(spool, lambda filler: (size, _support.fill_events(filler, size, FILL_CHUNK)))
            tracker = tracker_for(emulator, spool)
            samples = []
            for _ in range(frames):
                for _ in range(10):
                    start = clock()
                    tracker.on_character_event("coin_collected", body=BODY, **PLAYER)
                    samples.append(clock() - start)
                # The rest of the frame: 4 ms of the game's own work, then waiting for the next
                # frame without the GIL, as pygame's Clock.tick does.
                frame_start = time.perf_counter()
                while time.perf_counter() < frame_start + 0.004:
                    pass
                time.sleep(max(0.0, frame_start + 1 / 60 - time.perf_counter()))
            results[label] = (percentiles(samples), tracker.stats()["confirmed_by_service"])
            tracker.close(timeout=60)
            emulator.control("POST", "reset")
    return results


def throughput(emulator, events, sessions):
    """Seconds to drain a backlog of events alone, then of sessions alone (through bulk)."""

    def fill_events(filler):
        return events, _support.fill_events(filler, events, FILL_CHUNK, name="tick")

    def fill_sessions(filler):
        return sessions, _support.fill_sessions(filler, sessions, FILL_CHUNK)

    rows = {}
    for label, fill, counter in (("events", fill_events, "events"), ("sessions (bulk)", fill_sessions, "sessions")):
        with spool_folder() as spool:
            backlog(spool, fill, clock=ManualClock())
            started = time.perf_counter()
            tracker = tracker_for(emulator, spool)
            remaining = tracker.flush(timeout=600)
            took = time.perf_counter() - started
            counters = emulator.control("GET", "counters")["counters"]
            tracker.close(timeout=30)
        emulator.control("POST", "reset")
        rows[label] = (counters[counter], counters["requests"], took, remaining)
    return rows


def memory(emulator, pending):
    with spool_folder() as spool:
        emulator.fail_everything()
        before = rss_mb()
        tracker = tracker_for(emulator, spool, retry=playhooks.RetryPolicy(base_delay=300))
        # A game emits over time: 5,000 at a time, each in the spool before the next (the
        # in-memory queue holds 10,000 at most by default).
        _support.fill_events(tracker, pending, 5000, name="tick")
        # Each record tried once (the sender's count of what is pending is taken after a round).
        still_pending = tracker.flush(timeout=60)
        after = rss_mb()
        tracker.close(timeout=0.5)
        spool_bytes = sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(spool) for name in files)
    emulator.control("POST", "reset")
    return after - before, still_pending, spool_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--emulator-root", metavar="DIR", default=_support.ROOT, help="the checkout the emulator runs from")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    size, frames, events, sessions, pending = (500, 30, 300, 300, 2000) if quick else (20000, 600, 5000, 5000, 100000)
    _support.quiet()  # the fillers' hung requests end in errors
    _support.header("Delivery under load: hook latency while a backlog drains, throughput, memory", arguments)
    print()
    with _support.Emulator(arguments.emulator_root) as emulator:
        print(f"hook latency, 10 events a frame at 60 fps, {frames} frames (microseconds):")
        print(f"  {'':28} {'median':>8} {'p99':>8} {'p99.9':>8}   sent meanwhile")
        for label, ((median, p99, p999), sent) in hook_latency(emulator, size, frames).items():
            print(f"  {label:28} {median:8.2f} {p99:8.2f} {p999:8.2f}   {sent}")
        print("\nthroughput: a backlog drained by a tracker starting on the spool:")
        for label, (count, requests, took, remaining) in throughput(emulator, events, sessions).items():
            print(
                f"  {label:16} {count:7d} in {took:6.2f} s = {count / took:8.0f} per second"
                f" ({requests} requests, {remaining} left)"
            )
        grew, still_pending, spool_bytes = memory(emulator, pending)
        print(f"\nmemory with {still_pending} events pending (service down): RSS grew {grew:.1f} MB;")
        print(f"  the spool holds them on disk: {spool_bytes / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
