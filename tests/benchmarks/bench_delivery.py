"""Delivery under load: the game thread's hook latency while a backlog drains, throughput, memory.

    python tests/benchmarks/bench_delivery.py            # the full run (a minute or two)
    python tests/benchmarks/bench_delivery.py --quick    # a smoke run, as the test suite does

The emulator runs in its own process (``playhooks emulate``), as a real service would be, so only
the tracker's own threads share this process's GIL with the "game". Every number is from this one
run; compare the rows with each other.
"""

import argparse
import json
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import urllib3

import playhooks
from playhooks.testing import ManualClock

PLAYER = {"playfab_id": "4F1C2A9B7D3E8A61", "character_id": "8D2E0F4B1A6C9E37"}
BODY = {"level": 3, "coins": 120}


@contextlib.contextmanager
def spool_folder():
    """A fresh spool; removed afterwards even while a closed filler's hung request still writes."""
    folder = tempfile.mkdtemp(prefix="playhooks-bench-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(samples):
    ordered = sorted(samples)
    return [ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000 for q in (0.5, 0.99, 0.999)]


class Emulator:
    """``playhooks emulate`` in a child process, and its control API."""

    def __enter__(self):
        command = [sys.executable, "-m", "playhooks", "emulate", "--port", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip().rsplit(" ", 1)[-1]
        self.http = urllib3.PoolManager()
        return self

    def control(self, method, name, body=None):
        response = self.http.request(method, f"{self.url}/_emulator/{name}", body=json.dumps(body) if body else None)
        return json.loads(response.data)

    def fail_everything(self):
        self.control("POST", "faults", {"kind": "status", "count": 10**9, "status": 503})

    def backlog(self, spool, fill):
        """A spool of never-attempted records: a tracker fills it while its one request hangs."""
        self.control("POST", "faults", {"kind": "hang", "count": 2, "seconds": 3.0})
        filler = tracker_for(self, spool, read_timeout=30, clock=ManualClock())
        fill(filler)
        filler._worker.flush(120)  # written to the spool; the sender is stuck on its first request
        filler.close(timeout=0.1)
        self.control("POST", "reset")
        filler._sender._thread.join(10)  # its hung request ends (and is settled) within seconds

    def __exit__(self, *exc_info):
        self.process.terminate()
        self.process.wait(10)
        self.process.stdout.close()


def tracker_for(emulator, spool, **settings):
    settings.setdefault("retry", playhooks.RetryPolicy(base_delay=0.05, max_delay=0.1, max_attempts=10_000))
    return playhooks.Tracker(
        [playhooks.PlayCamp("key:secret", emulator.url), playhooks.PlayFab("ABCD", "secret", emulator.url)],
        spool_dir=spool,
        **settings,
    )


def hook_latency(emulator, backlog, frames):
    """Per-call hook time at 10 events a frame: idle worker, then while a backlog drains."""
    clock = time.perf_counter_ns
    results = {}
    for label in ("worker idle", "worker draining a backlog"):
        with spool_folder() as spool:
            if label != "worker idle":
                emulator.backlog(spool, lambda filler: [filler.on_character_event("backlog", body={"n": n}, **PLAYER) for n in range(backlog)])
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
            results[label] = (percentiles(samples), tracker.stats()["sent"])
            tracker.close(timeout=60)
            emulator.control("POST", "reset")
    return results


def throughput(emulator, events, sessions):
    """Seconds to drain a backlog of events alone, then of sessions alone (through bulk)."""

    def fill_events(filler):
        for number in range(events):
            filler.on_character_event("tick", body={"n": number}, **PLAYER)

    def fill_sessions(filler):
        for number in range(sessions):
            filler.on_session_start(f"player-{number}")
        filler.settings.clock.advance(60)
        for number in range(sessions):
            filler.on_session_end(filler._open[f"player-{number}"])

    rows = {}
    for label, fill, counter in (("events", fill_events, "events"), ("sessions (bulk)", fill_sessions, "sessions")):
        with spool_folder() as spool:
            emulator.backlog(spool, fill)
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
        for number in range(pending):
            tracker.on_character_event("tick", body={"n": number}, **PLAYER)
            if number % 5000 == 4999:
                tracker._worker.flush(30)  # a game emits over time; the queue holds 10,000 at most
        tracker._worker.flush(60)
        after = rss_mb()
        stats = tracker.stats()
        tracker.close(timeout=0.5)
        spool_bytes = sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(spool) for name in files)
    emulator.control("POST", "reset")
    return after - before, stats["pending"], spool_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args(argv).quick
    backlog, frames, events, sessions, pending = (500, 30, 300, 300, 2000) if quick else (20000, 600, 5000, 5000, 100000)
    import logging

    logging.getLogger("playhooks").setLevel(logging.CRITICAL)  # the fillers' hung requests end late
    print(f"Python {sys.version.split()[0]}; emulator in its own process\n")
    with Emulator() as emulator:
        print(f"hook latency, 10 events a frame at 60 fps, {frames} frames (microseconds):")
        print(f"  {'':28} {'median':>8} {'p99':>8} {'p99.9':>8}   sent meanwhile")
        for label, ((median, p99, p999), sent) in hook_latency(emulator, backlog, frames).items():
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
