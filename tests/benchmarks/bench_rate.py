"""Delivery rate: PlayFab events per second from a tracker to the emulator, with no added delay and
with 20 ms added to every request (a real network's round trip), beside a bare urllib3 client
sending the same requests.

    python tests/benchmarks/bench_rate.py                              # the full run (about a minute)
    python tests/benchmarks/bench_rate.py --quick                      # a smoke run, as the tests do
    PYTHONPATH=/tmp/bench-old python tests/benchmarks/bench_rate.py    # an older checkout

Issue 9's targets: with 20 ms per request, at least 6 times today's serial rate (take today's from
a run against the older checkout; the bare client on one connection is the same bound, in this
run); with no added delay, at least 1.5 times the bare urllib3 client on one connection.

Each row sends ``--events`` (or ``--delayed-events``) events. The tracker (a PlayFab sink alone, to
``playhooks emulate`` in its own process) is timed from its first ``on_character_event`` call
until the emulator has them all, after one warm-up event; so its row includes the worker's first
``flush_interval``. The baselines send the same path, headers and body (read off the wire from the
tracker) with urllib3 alone: serially on one kept-alive connection, and from 8 threads with one
connection each. The 20 ms come from the emulator's ``--latency`` option where this checkout's
emulator has one, else from its faults API (a delay fault for every request); the check printed
first shows the delay holds only the request it applies to, and every row says how many of its
requests were delayed.
"""

import argparse
import statistics
import sys
import time

import playhooks

import _support
from _support import PLAYER, SECRET_KEY, TITLE_ID

DELAY = 0.020
THREADS = 8


class Conditions:
    """The emulator for one column, and how it adds the delay."""

    def __init__(self, emulator, delay, by_fault):
        self.emulator, self.delay, self.by_fault = emulator, delay, by_fault

    def start(self):
        self.emulator.reset()
        if self.delay and self.by_fault:
            self.emulator.delay_next(10**9, self.delay)

    def finish(self):
        """The emulator's counters for the row, then a reset (which clears the fault)."""
        counters = self.emulator.counters()
        self.emulator.reset()
        return counters


def delayed_note(conditions, counters):
    if not (conditions.delay and conditions.by_fault):
        return ""
    return "" if counters["faults"] == counters["requests"] else f" (only {counters['faults']} of {counters['requests']} delayed)"


def tracker_rate(conditions, count, overrides):
    """(events per second, note) for a tracker delivering ``count`` events as they are emitted."""
    emulator = conditions.emulator
    with _support.spool_folder() as folder:
        tracker = playhooks.Tracker([playhooks.PlayFab(TITLE_ID, SECRET_KEY, emulator.url)], spool_dir=folder, **overrides)
        try:
            tracker.on_character_event("warm_up", **PLAYER)  # loads the wire format and urllib3, connects
            tracker.flush(timeout=30)
            conditions.start()
            started = time.perf_counter()
            for number in range(count):
                tracker.on_character_event("tick", body={"n": number}, **PLAYER)
            left = tracker.flush(timeout=600)
            arrived = emulator.wait_for_events(count, timeout=0 if left else 60)["events"]
            took = time.perf_counter() - started
            counters = conditions.finish()
            lost = _support.dropped(tracker)
        finally:
            tracker.close(timeout=5)
    note = delayed_note(conditions, counters)
    if arrived < count:
        note += f" (only {arrived} of {count} arrived)"
    if lost:
        note += f" (dropped: {lost})"
    return arrived / took, note


def bare_rate(conditions, request, count, connections):
    conditions.start()
    took, failures = _support.bare_send(conditions.emulator, request, count, connections)
    counters = conditions.finish()
    note = delayed_note(conditions, counters)
    if failures or counters["events"] != count:
        note += f" ({failures} failed, {counters['events']} of {count} arrived)"
    return count / took, note


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _support.add_common_arguments(parser)
    parser.add_argument("--events", type=int, help="events per row with no added delay (default 5000)")
    parser.add_argument("--delayed-events", type=int, help="events per row with 20 ms per request (default 1000)")
    parser.add_argument("--repeats", type=int, help="runs of each row, taking turns; the median is shown (default 2)")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    events = arguments.events or (200 if quick else 5000)
    delayed_events = arguments.delayed_events or (40 if quick else 1000)
    repeats = arguments.repeats or (1 if quick else 2)
    _support.quiet()
    _support.header("Delivery rate of PlayFab events to the emulator", arguments)
    overrides = _support.settings_overrides(arguments)
    _support.print_settings("tracker", overrides)
    if max(events, delayed_events) > playhooks.Settings(**overrides).max_queue:
        sys.exit("--events and --delayed-events must fit the in-memory queue (max_queue)")
    request = _support.captured_event_request(overrides)
    print(f"baseline requests: POST {request.path}, {len(request.body)}-byte body, headers {sorted(request.headers)}")

    latency = "--latency" in _support.emulator_help(arguments.emulator_root)
    with _support.Emulator(arguments.emulator_root) as plain, _support.Emulator(
        arguments.emulator_root, *(["--latency", DELAY] if latency else [])
    ) as slow:
        if latency:
            ok, description = _support.check_latency(slow, request, DELAY)
        else:
            ok, description = _support.check_delay_fault(plain, request)
        print(f"delay check: {description}: {'as expected' if ok else 'NOT AS EXPECTED'}")
        columns = [
            ("no added delay", Conditions(plain, 0.0, False), events),
            (f"{DELAY * 1000:.0f} ms per request", Conditions(slow if latency else plain, DELAY, not latency), delayed_events),
        ]
        rows = {
            "bare urllib3, 1 connection": lambda conditions, count: bare_rate(conditions, request, count, 1),
            f"bare urllib3, {THREADS} threads": lambda conditions, count: bare_rate(conditions, request, count, THREADS),
            "playhooks": lambda conditions, count: tracker_rate(conditions, count, overrides),
        }
        results = {}  # (row, column) -> [(rate, note)]
        for _ in range(repeats):
            for column, conditions, count in columns:
                for row, measure in rows.items():
                    results.setdefault((row, column), []).append(measure(conditions, count))

    print(
        f"\nevents per second, median of {repeats} (events per run: {events} with no added delay,"
        f" {delayed_events} with {DELAY * 1000:.0f} ms; by {'--latency' if latency else 'a delay fault on every request'}):"
    )
    print(f"  {'':30}" + "".join(f"{column:>22}" for column, _, _ in columns))
    median = {key: statistics.median(rate for rate, _ in runs) for key, runs in results.items()}
    for row in rows:
        line = f"  {row:30}"
        for column, _, _ in columns:
            runs = results[(row, column)]
            spread = f" ({min(r for r, _ in runs):.0f}-{max(r for r, _ in runs):.0f})" if len(runs) > 1 else ""
            line += f"{median[(row, column)]:>10.0f}{spread:>12}"
        notes = sorted({note for column, _, _ in columns for _, note in results[(row, column)] if note})
        print(line + ("  " + "; ".join(notes) if notes else ""))
    ratio = {column: median[("playhooks", column)] / median[("bare urllib3, 1 connection", column)] for column, _, _ in columns}
    print(f"  {'playhooks / bare 1 connection':30}" + "".join(f"{ratio[column]:>21.2f}x" for column, _, _ in columns))
    no_delay, delayed = (column for column, _, _ in columns)
    print(
        f"\ntargets: no added delay, playhooks >= 1.5x bare 1 connection: {ratio[no_delay]:.2f}x;"
        f" {DELAY * 1000:.0f} ms, playhooks >= 6x today's serial rate: {median[('playhooks', delayed)]:.0f} events/s"
        f" (compare today's run; {ratio[delayed]:.2f}x the bare serial client here)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
