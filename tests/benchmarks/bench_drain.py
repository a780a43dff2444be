"""Catching up: a backlog of 100k PlayFab events already in the spool, drained to the emulator by a
tracker starting on it, beside a bare urllib3 client delivering as many; and what each of the
spool's per-round operations costs with 1k and with 100k pending.

    python tests/benchmarks/bench_drain.py                              # the full run (a few minutes)
    python tests/benchmarks/bench_drain.py --quick                      # a smoke run, as the tests do
    PYTHONPATH=/tmp/bench-old python tests/benchmarks/bench_drain.py    # an older checkout

Issue 9's targets: the drain at least as fast as the bare client on one connection; each
per-round cost at 100k pending within 2 times its cost at 1k.

The backlog is written by a tracker whose requests are held (a loopback port that never answers),
``--fill-chunk`` events at a time, each chunk in the spool before the next, as a game emitting over
time would leave it; then its held requests are ended and its threads waited for, so no live
tracker owns any of it. The drain is timed from the new tracker's construction until the emulator
(``playhooks emulate``, its own process; counters polled every 50 ms) has every event. The bare
client sends the request the tracker sends (read off the wire), serially on one kept-alive
connection.

The per-round costs are taken on copies of the backlogs, through ``playhooks._spool.Spool`` opened
on them directly: ``pending()``, ``claim_due(destination, now, max_records)`` plus ``release`` of
each claim (so the spool is the same after), ``enforce_limits()`` (bounds above the backlog: it
drops nothing) and ``next_due(destination)``. A method this checkout lacks is skipped, and said.
"""

import argparse
import inspect
import os
import shutil
import statistics
import sys
import time

import playhooks

import _support
from _support import SECRET_KEY, TITLE_ID

DESTINATION = "playfab"


def fill(folder, count, chunk, overrides):
    """A backlog of ``count`` events in ``folder``; (spooled, pending at the filler's close, drops)."""
    with _support.held_tracker(folder, **{**overrides, **_support.filler_settings(chunk)}) as filler:
        spooled = _support.fill_events(filler, count, chunk)
        lost = _support.dropped(filler)
    return spooled, lost


def drain(emulator, folder, count, overrides):
    """(seconds until the emulator has ``count`` events, what arrived, drops) for a tracker starting on the spool."""
    emulator.reset()
    started = time.perf_counter()
    tracker = playhooks.Tracker([playhooks.PlayFab(TITLE_ID, SECRET_KEY, emulator.url)], spool_dir=folder, **overrides)
    try:
        arrived = emulator.wait_for_events(count, timeout=1200, poll=0.05)["events"]
        took = time.perf_counter() - started
        lost = _support.dropped(tracker)
    finally:
        tracker.close(timeout=10)
    emulator.reset()
    return took, arrived, lost


def open_spool(folder, max_records):
    """The spool at ``folder`` as a tracker's sender sees it, or None (and why) if this checkout's
    Spool cannot be made with the arguments the benchmark knows."""
    from playhooks import _spool

    try:
        from playhooks._owners import new_owner

        owner = new_owner()
    except ImportError:
        owner = f"{os.getpid()}.benchmark"
    drops = []
    options = {"max_records": max_records, "expendable": [DESTINATION]}
    accepted = inspect.signature(_spool.Spool).parameters
    options = {name: value for name, value in options.items() if name in accepted}
    try:
        started = time.perf_counter()
        spool = _spool.Spool(folder, owner, lambda reason, detail, count: drops.append((reason, count)), **options)
        return spool, time.perf_counter() - started, drops
    except TypeError as error:
        return None, f"Spool({folder!r}, owner, drop, **{options}) failed: {error}", drops


def spool_costs(folder, max_records, repeats):
    """{operation: median seconds} on the spool at ``folder``, and notes (skipped operations, sizes)."""
    spool, opened, drops = open_spool(folder, max_records)
    if spool is None:
        return {}, [opened]
    batch = getattr(playhooks.PlayFab, "max_batch", 50)
    claimed = []

    def claim_and_release():
        claims = spool.claim_due(DESTINATION, time.time(), batch)
        claimed.append(sum(len(claim.records) for claim in claims))
        for claim in claims:
            spool.release(claim)

    operations = {
        "pending()": ("pending", lambda: spool.pending()),
        f"claim_due({DESTINATION!r}, now, {batch}) + release": ("claim_due", claim_and_release),
        "enforce_limits()": ("enforce_limits", lambda: spool.enforce_limits()),
        f"next_due({DESTINATION!r})": ("next_due", lambda: spool.next_due(DESTINATION)),
    }
    costs, notes = {"opening the spool (once)": opened}, []
    pending = spool.pending() if hasattr(spool, "pending") else None
    for label, (method, call) in operations.items():
        if not hasattr(spool, method) or (method == "claim_due" and not hasattr(spool, "release")):
            notes.append(f"{label}: skipped, this checkout's Spool has no {method}")
            continue
        samples = []
        try:
            for _ in range(repeats):
                started = time.perf_counter()
                call()
                samples.append(time.perf_counter() - started)
        except TypeError as error:  # a changed signature
            notes.append(f"{label}: skipped ({error})")
            continue
        costs[label] = statistics.median(samples)
    if hasattr(spool, "close"):
        spool.close()
    if pending is not None:
        notes.append(f"pending() saw {pending}" + (f", claim_due took {max(claimed)} records a round" if claimed else ""))
    if drops:
        notes.append(f"dropped while measuring: {drops}")
    return costs, notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _support.add_common_arguments(parser)
    parser.add_argument("--backlog", type=int, help="events in the backlog to drain (default 100000)")
    parser.add_argument("--small", type=int, help="pending records for the small spool (default 1000)")
    parser.add_argument(
        "--fill-chunk", type=int, default=60,
        help="events per filler round (default 60: 10 events a frame at 60 fps, one round per default flush_interval)",
    )
    parser.add_argument("--repeats", type=int, help="timings of each spool operation; the median is shown (default 20)")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    backlog = arguments.backlog or (2000 if quick else 100_000)
    small = arguments.small or (200 if quick else 1000)
    repeats = arguments.repeats or (5 if quick else 20)
    _support.quiet()
    _support.header("Draining a backlog from the spool; the spool's per-round costs", arguments)
    # The bounds stay clear of the backlog, for the filler and the drain alike: nothing is dropped for room.
    max_records = max(playhooks.Settings().max_spool_records, 2 * backlog)
    overrides = _support.settings_overrides(arguments, max_spool_records=max_records)
    _support.print_settings("drain tracker", overrides)
    request = _support.captured_event_request(overrides)

    with _support.spool_folder() as big, _support.spool_folder() as little, _support.spool_folder() as copies:
        print(f"\nfilling: {backlog} and {small} events, {arguments.fill_chunk} a round, by a tracker whose requests are held")
        started = time.perf_counter()
        for folder, count in ((big, backlog), (little, small)):
            spooled, lost = fill(folder, count, arguments.fill_chunk, overrides)
            files = sum(len(names) for _, _, names in os.walk(os.path.join(folder, DESTINATION)))
            print(f"  {count:7d} asked, {spooled} spooled, in {files} files; dropped: {lost or 'none'}")
            if spooled != count:
                sys.exit("the backlog is not what was asked for: the numbers below would be wrong")
        print(f"  ({time.perf_counter() - started:.1f} s)")

        print(f"\nper-round spool costs, median of {repeats} (ms):")
        results = {}
        for label, folder in ((f"{small} pending", little), (f"{backlog} pending", big)):
            copy = os.path.join(copies, label.split()[0])
            shutil.copytree(folder, copy)
            results[label] = spool_costs(copy, max_records, repeats)
        (small_label, (small_costs, small_notes)), (big_label, (big_costs, big_notes)) = results.items()
        print(f"  {'':44} {small_label:>14} {big_label:>15} {'ratio':>7}  (target <= 2x)")
        for operation in small_costs:
            if operation in big_costs:
                ratio = big_costs[operation] / small_costs[operation] if small_costs[operation] else float("inf")
                print(
                    f"  {operation:44} {small_costs[operation] * 1000:14.3f} {big_costs[operation] * 1000:15.3f}"
                    f" {ratio:6.1f}x"
                )
        for label, notes in ((small_label, small_notes), (big_label, big_notes)):
            for note in notes:
                print(f"  ({label}: {note})")

        with _support.Emulator(arguments.emulator_root) as emulator:
            print(f"\ndraining {backlog} events to the emulator:")
            took, arrived, lost = drain(emulator, big, backlog, overrides)
            emulator.reset()
            bare, failures = _support.bare_send(emulator, request, backlog)
            bare_arrived = emulator.counters()["events"]
            emulator.reset()
        print(f"  {'':38} {'seconds':>8} {'events/s':>9} {'time / bare':>12}")
        print(f"  {'bare urllib3, 1 connection':38} {bare:8.1f} {backlog / bare:9.0f} {1:11.2f}x"
              + (f"  ({failures} failed, {bare_arrived} arrived)" if failures or bare_arrived != backlog else ""))
        print(
            f"  {'playhooks, a tracker starting on it':38} {took:8.1f} {arrived / took:9.0f} {took / bare:11.2f}x"
            + (f"  (only {arrived} arrived)" if arrived < backlog else "")
            + (f"  (dropped: {lost})" if lost else "")
        )
    print(f"\ntarget: drain time <= bare urllib3's: {took / bare:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
