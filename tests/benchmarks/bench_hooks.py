"""What a hook costs the game's thread, and what `import playhooks` costs its start.

    python tests/benchmarks/bench_hooks.py            # the full run (about a minute)
    python tests/benchmarks/bench_hooks.py --quick    # a smoke run, as the test suite does

Every number is measured in this one run, side by side with a floor (`deque.append` of a tuple)
and a reference (`import attrs`), because the machine is shared and noisy: compare the ratios.
Per-call times include the timer's own cost, printed first.
"""

import argparse
import collections
import statistics
import subprocess
import sys
import time

import logging

import playhooks

BODY = {"level": 3, "coins": 120}


def percentiles(samples):
    ordered = sorted(samples)

    def at(fraction):
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]

    return {"median": at(0.5), "p99": at(0.99), "p99.9": at(0.999), "max": ordered[-1]}


def time_calls(call, rounds, per_round, between=None):
    """Time each call alone (nanoseconds); ``between`` runs untimed after each round."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(rounds):
        for _ in range(per_round):
            start = clock()
            call()
            samples.append(clock() - start)
        if between is not None:
            between()
    return samples


def hook_costs(rounds, per_round):
    tracker = playhooks.Tracker(sinks=[playhooks.MemorySink()])
    tracker.on_session_start("player-1", playfab_id="4F1C2A9B7D3E8A61", character_id="8D2E0F4B1A6C9E37")
    # The worker drains between rounds, untimed: this measures the hook, as issue 4's benchmark
    # measures it again with the worker busy delivering.
    flush = lambda: tracker.flush(timeout=30)  # noqa: E731
    floor_queue = collections.deque()
    item = ("raw_event", "coin_collected", None, None, BODY, None, None, None, 0.0)
    rows = {
        "timer alone": time_calls(lambda: None, rounds, per_round),
        "deque.append (floor)": time_calls(lambda: floor_queue.append(item), rounds, per_round, floor_queue.clear),
        "on_character_event": time_calls(
            lambda: tracker.on_character_event("coin_collected", body=BODY), rounds, per_round, flush
        ),
    }
    strict = playhooks.Tracker(sinks=[playhooks.MemorySink()], strict=True)
    strict.on_session_start("player-1", playfab_id="4F1C2A9B7D3E8A61", character_id="8D2E0F4B1A6C9E37")
    rows["on_character_event (strict)"] = time_calls(
        lambda: strict.on_character_event("coin_collected", body=BODY),
        rounds,
        per_round,
        lambda: strict.flush(timeout=30),
    )
    sessions = iter(range(10**9))
    rows["on_session_start + end"] = time_calls(
        lambda: tracker.on_session_end(tracker.on_session_start(f"u{next(sessions)}")),
        max(1, rounds // 10),
        per_round,
        flush,
    )
    stats = tracker.stats()
    tracker.close(timeout=30)
    strict.close(timeout=30)
    return rows, stats


def import_seconds(statement, runs):
    """Median wall time of a fresh interpreter running ``statement``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few thousand calls, for the test suite")
    arguments = parser.parse_args(argv)
    rounds, per_round, import_runs = (5, 200, 3) if arguments.quick else (200, 1000, 21)
    logging.getLogger("playhooks").setLevel(logging.ERROR)  # the sessions here are too short to send

    print(f"Python {sys.version.split()[0]}, {rounds * per_round} calls per row, one small body\n")
    rows, stats = hook_costs(rounds, per_round)
    print(f"{'call':32} {'median':>9} {'p99':>9} {'p99.9':>9} {'max':>9}   (microseconds)")
    for name, samples in rows.items():
        values = percentiles(samples)
        print(f"{name:32} " + " ".join(f"{values[key] / 1000:9.2f}" for key in ("median", "p99", "p99.9", "max")))
    hook, floor = statistics.median(rows["on_character_event"]), statistics.median(rows["deque.append (floor)"])
    print(f"\non_character_event median / deque.append median: {hook / floor:.1f}x")
    print(f"tracker stats after the run: {stats}")

    bare = import_seconds("pass", import_runs)
    attrs_only = import_seconds("import attrs", import_runs)
    ours = import_seconds("import playhooks", import_runs)
    print(f"\nimport, median of {import_runs} fresh interpreters, interpreter start subtracted:")
    print(f"  import attrs      {(attrs_only - bare) * 1000:7.1f} ms")
    print(f"  import playhooks  {(ours - bare) * 1000:7.1f} ms  ({(ours - bare) / (attrs_only - bare):.2f}x attrs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
