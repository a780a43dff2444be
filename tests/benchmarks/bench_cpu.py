"""What delivery costs in the background at a steady 600 events a second (10 a frame at 60 fps):
CPU time of the library's threads per event delivered, and how late the game's thread wakes from
its frame sleep, beside the same frame loop without playhooks.

    python tests/benchmarks/bench_cpu.py                              # the full run (under a minute)
    python tests/benchmarks/bench_cpu.py --quick                      # a smoke run, as the tests do
    PYTHONPATH=/tmp/bench-old python tests/benchmarks/bench_cpu.py    # an older checkout

Issue 9's targets: background CPU per delivered event at most half of today's (about 750 us); the
wake-late p99 within 0.5 ms of the loop without playhooks.

Each frame makes 10 calls (``on_character_event``, or a function that does nothing), spins for
``--work-ms`` of the game's own work holding the GIL, then sleeps until the frame's time. Wake late
is how long after that time ``time.sleep`` returned. Background CPU is the process's CPU time
(``time.process_time``) less the game thread's own (``time.thread_time`` read on it), over the
loop and the ``flush`` that follows it, divided by the events the emulator received meanwhile; the
emulator (``playhooks emulate``) is a process of its own, so its CPU is not counted. The two loops
take turns, ``--rounds`` each, and a tracker is made fresh for each of its rounds and warmed up
with one event before the clock starts.
"""

import argparse
import sys
import time

import playhooks

import _support
from _support import BODY, PLAYER, SECRET_KEY, TITLE_ID

FPS = 60
PER_FRAME = 10


def no_op(*args, **kwargs):
    pass


def frame_loop(call, seconds, work):
    """Wake-late samples (seconds), frames that overran their time (no sleep at all), calls made."""
    frame = 1 / FPS
    late, overran, calls = [], 0, 0
    started = time.perf_counter()
    next_frame = started + frame
    while next_frame <= started + seconds:
        for _ in range(PER_FRAME):
            call("coin_collected", body=BODY, **PLAYER)
        calls += PER_FRAME
        spin_until = time.perf_counter() + work
        while time.perf_counter() < spin_until:
            pass
        now = time.perf_counter()
        if next_frame > now:
            time.sleep(next_frame - now)
            late.append(time.perf_counter() - next_frame)
            next_frame += frame
        else:  # as pygame's Clock.tick: a frame that overran starts the next at once, no catching up
            overran += 1
            next_frame = now + frame
    return late, overran, calls


def run_without(seconds, work):
    process, game = time.process_time(), time.thread_time()
    late, overran, _ = frame_loop(no_op, seconds, work)
    background = (time.process_time() - process) - (time.thread_time() - game)
    return late, overran, background, 0, {}


def run_with(emulator, seconds, work, overrides):
    with _support.spool_folder() as folder:
        tracker = playhooks.Tracker([playhooks.PlayFab(TITLE_ID, SECRET_KEY, emulator.url)], spool_dir=folder, **overrides)
        try:
            tracker.on_character_event("warm_up", **PLAYER)
            tracker.flush(timeout=30)
            before = emulator.counters()["events"]
            process, game = time.process_time(), time.thread_time()
            late, overran, calls = frame_loop(tracker.on_character_event, seconds, work)
            left = tracker.flush(timeout=60)
            # flush() may return with a few still on the way (said in the row); wait for them, with a deadline.
            delivered = emulator.wait_for_events(before + calls, timeout=10)["events"] - before
            background = (time.process_time() - process) - (time.thread_time() - game)
            lost = _support.dropped(tracker)
        finally:
            tracker.close(timeout=5)
    emulator.reset()
    if left:
        lost["pending after flush(60)"] = left
    if delivered < calls:
        lost["not delivered"] = calls - delivered
    return late, overran, background, delivered, lost


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _support.add_common_arguments(parser)
    parser.add_argument("--seconds", type=float, help="seconds of frames for each loop, over all rounds (default 30)")
    parser.add_argument("--rounds", type=int, help="turns each loop takes (default 3)")
    parser.add_argument("--work-ms", type=float, default=4.0, help="the game's own work each frame, holding the GIL (default 4)")
    arguments = parser.parse_args(argv)
    seconds = arguments.seconds or (2.0 if arguments.quick else 30.0)
    rounds = arguments.rounds or (1 if arguments.quick else 3)
    work = arguments.work_ms / 1000
    _support.quiet()
    _support.header("Background CPU and the frame loop's wake-up at a steady 600 events/s", arguments)
    overrides = _support.settings_overrides(arguments)
    _support.print_settings("tracker", overrides)
    rows = {"loop without playhooks": [], "loop with playhooks": []}
    with _support.Emulator(arguments.emulator_root) as emulator:
        for _ in range(rounds):
            rows["loop without playhooks"].append(run_without(seconds / rounds, work))
            rows["loop with playhooks"].append(run_with(emulator, seconds / rounds, work, overrides))
    print(
        f"\n{PER_FRAME} events a frame at {FPS} fps ({PER_FRAME * FPS} events/s), {arguments.work_ms:g} ms of game work"
        f" a frame, {seconds:g} s of frames each in {rounds} turns:"
    )
    print(
        f"  {'':24} wake late, ms: {'p50':>5} {'p99':>6} {'p99.9':>6} {'max':>6}  overran"
        f"  {'background CPU':>14} {'of a core':>9} {'delivered':>9} {'us/event':>9}"
    )
    summary = {}
    for label, runs in rows.items():
        late = sorted(sample for run in runs for sample in run[0])
        overran = sum(run[1] for run in runs)
        background = sum(run[2] for run in runs)
        delivered = sum(run[3] for run in runs)
        lost = {}
        for run in runs:
            for reason, count in run[4].items():
                lost[reason] = lost.get(reason, 0) + count
        p50, p99, p999 = (_support.percentile(late, fraction) * 1000 for fraction in (0.5, 0.99, 0.999))
        per_event = background / delivered * 1e6 if delivered else None
        summary[label] = (p99, per_event)
        print(
            f"  {label:24}                {p50:5.2f} {p99:6.2f} {p999:6.2f} {late[-1] * 1000:6.2f}  {overran:7d}"
            f"  {background:12.2f} s {background / seconds:8.0%} {delivered or '-':>9}"
            f" {'-' if per_event is None else f'{per_event:9.0f}':>9}"
            + (f"   {lost}" if lost else "")
        )
    (without_p99, _), (with_p99, per_event) = summary.values()
    print(
        f"\ntargets: wake-late p99 within 0.5 ms of the loop without playhooks: {with_p99 - without_p99:+.2f} ms"
        f" ({with_p99 / without_p99:.2f}x);"
        f" CPU per delivered event <= half of today's (about 750 us): {per_event:.0f} us"
        if per_event is not None
        else "\nno event was delivered: CPU per event cannot be told"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
