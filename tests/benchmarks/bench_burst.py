"""A burst on the game's thread: blocks of 100 ``on_character_event`` calls 5 ms apart (about 16,700
events a second) with the default settings, a PlayFab sink to the emulator; what was dropped, and
what each call cost the game, beside the same loop calling a function that does nothing.

    python tests/benchmarks/bench_burst.py                              # the full run (under a minute)
    python tests/benchmarks/bench_burst.py --quick                      # a smoke run, as the tests do
    PYTHONPATH=/tmp/bench-old python tests/benchmarks/bench_burst.py    # an older checkout

Issue 9's target: no ``queue_full`` drop at all, with the game thread's p99.9 hook cost no worse
than today's (take today's from a run against the older checkout).

Each run makes a fresh tracker (default settings, a fresh spool, ``playhooks emulate`` in its own
process), sends one warm-up event through, then runs the burst; the loop calling a no-op takes turns
with it. After the burst the benchmark waits until every accepted event is in the spool (polling
``stats()``) and reports how long that took and what ``stats()["dropped"]`` holds; the tracker is
then closed without waiting for the rest to be delivered.
"""

import argparse
import sys
import time

import playhooks

import _support
from _support import BODY, PLAYER, SECRET_KEY, TITLE_ID

BLOCK = 100
GAP = 0.005  # seconds of sleep between two blocks


def burst(call, total):
    """Per-call nanoseconds of ``total`` calls in blocks of ``BLOCK``, ``GAP`` of sleep after each
    block (with the calls and the sleep's own overshoot, about 16,700 events a second), and the
    seconds it all took."""
    clock = time.perf_counter_ns
    samples = []
    started = time.perf_counter()
    for first in range(0, total, BLOCK):
        if first:
            time.sleep(GAP)
        for _ in range(min(BLOCK, total - first)):
            begin = clock()
            call("burst", body=BODY, **PLAYER)
            samples.append(clock() - begin)
    return samples, time.perf_counter() - started


def no_op(*args, **kwargs):
    pass


def tracker_burst(emulator, total, overrides):
    """The samples, the burst's seconds, the drops, and seconds from the burst's end to all of it in the spool."""
    with _support.spool_folder() as folder:
        tracker = playhooks.Tracker([playhooks.PlayFab(TITLE_ID, SECRET_KEY, emulator.url)], spool_dir=folder, **overrides)
        try:
            tracker.on_character_event("warm_up", **PLAYER)
            tracker.flush(timeout=30)
            emulator.reset()
            before = tracker.stats()["written_to_spool"]
            samples, took = burst(tracker.on_character_event, total)
            ended = time.perf_counter()
            on_disk = _support.wait_spooled(tracker, before + total, timeout=120)
            spooled_after = time.perf_counter() - ended if on_disk else None
            stats = tracker.stats()
        finally:
            tracker.close(timeout=2)
        emulator.reset()
    lost = {reason: count for reason, count in stats["dropped"].items() if count}
    return samples, took, lost, spooled_after, stats["confirmed_by_service"]


def describe(samples):
    ordered = sorted(samples)
    return [_support.percentile(ordered, fraction) / 1000 for fraction in (0.5, 0.99, 0.999)] + [ordered[-1] / 1000]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _support.add_common_arguments(parser)
    parser.add_argument("--total", type=int, help="events in each burst (default 30000)")
    parser.add_argument("--repeats", type=int, help="bursts of each kind, taking turns (default 3)")
    arguments = parser.parse_args(argv)
    total = arguments.total or (3000 if arguments.quick else 30_000)
    repeats = arguments.repeats or (1 if arguments.quick else 3)
    _support.quiet()
    _support.header("A burst of on_character_event calls on the game's thread", arguments)
    overrides = _support.settings_overrides(arguments)
    _support.print_settings("tracker", overrides)
    print(f"\n{total} events in blocks of {BLOCK}, {GAP * 1000:.0f} ms apart (the rate reached is shown), {repeats} runs each:")
    rows = {"no-op function (baseline)": [], "playhooks": []}
    with _support.Emulator(arguments.emulator_root) as emulator:
        for _ in range(repeats):
            samples, took = burst(no_op, total)
            rows["no-op function (baseline)"].append((samples, took, {}, None, None))
            rows["playhooks"].append(tracker_burst(emulator, total, overrides))
    print(f"  {'':27} {'rate':>8} {'dropped':>9} {'spooled':>9}   per call, us: {'p50':>6} {'p99':>7} {'p99.9':>7} {'max':>8}")
    for label, runs in rows.items():
        for samples, took, lost, spooled_after, _ in runs:
            median, p99, p999, worst = describe(samples)
            count = sum(lost.values())
            print(
                f"  {label:27} {len(samples) / took:6.0f}/s {count:9d}"
                f" {'-' if spooled_after is None else f'{spooled_after:7.2f} s':>9}"
                f"                 {median:6.2f} {p99:7.2f} {p999:7.2f} {worst:8.1f}"
                + (f"   {lost}" if lost else "")
            )
    baseline = describe([sample for samples, *_ in rows["no-op function (baseline)"] for sample in samples])
    ours = describe([sample for samples, *_ in rows["playhooks"] for sample in samples])
    print(
        f"  all runs: playhooks / no-op, p50 {ours[0] / baseline[0]:.1f}x, p99 {ours[1] / baseline[1]:.1f}x,"
        f" p99.9 {ours[2] / baseline[2]:.1f}x ({ours[2]:.2f} us against {baseline[2]:.2f} us)"
    )
    queue_full = [run[2].get("queue_full", 0) for run in rows["playhooks"]]
    share = ", ".join(f"{count / total:.0%}" for count in queue_full)
    print(f"\ntarget: zero queue_full: {sum(queue_full)} in {repeats} bursts ({share} of each)")
    print("(spooled: seconds from the burst's last call until every accepted event was in the spool)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
