"""What tracking costs a pygame game's frame: Coin Rush's loop, headless, with tracking on and off.

    python tests/benchmarks/bench_pygame.py            # 4 x 600 frames (about 45 s)
    python tests/benchmarks/bench_pygame.py --quick    # a smoke run, as the test suite does

Each frame runs the sample's real loop (events through the adapter, the game's step and drawing,
the overlay's call, off) plus 10 extra character events, then sleeps the rest of its 1/60 s as pygame's
``Clock.tick`` does. "On" sends everything to the emulator, which runs in its own process; "off"
reports to nothing. Blocks of on and off alternate, so both see the same machine; the frame's own
work is timed, not the sleep.
"""

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"

import pygame  # noqa: E402

import playhooks  # noqa: E402
from playhooks.adapters.pygame import PygameAdapter  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTRA_EVENTS = 10


def load_sample():
    spec = importlib.util.spec_from_file_location("coin_rush", os.path.join(ROOT, "samples", "coin_rush.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_block(sample, screen, font, tracker, frames):
    """Frame times (seconds of work) for ``frames`` frames; tracker None means tracking off."""
    if tracker is None:
        report = lambda *args, **kwargs: None  # noqa: E731
        adapter = None
    else:
        report = tracker.on_character_event
        adapter = PygameAdapter(tracker, "bench", playfab_id="P", character_id="C")
    game = sample.Game(report, random.Random(1))
    times = []
    for frame in range(frames):
        start = time.perf_counter()
        for event in pygame.event.get():
            if adapter is not None:
                adapter.process(event)
        game.step(1 / sample.FPS, game.autopilot())
        for number in range(EXTRA_EVENTS):
            report("frame_event", body={"frame": frame, "n": number})
        game.draw(screen, font)
        if adapter is not None:
            adapter.draw(screen)
        pygame.display.flip()
        took = time.perf_counter() - start
        times.append(took)
        time.sleep(max(0.0, 1 / sample.FPS - took))
    if adapter is not None:
        adapter.end()
    return times


def summary(times):
    ordered = sorted(times)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.999))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    frames, blocks = (60, 1) if parser.parse_args(argv).quick else (600, 2)

    sample = load_sample()
    pygame.init()
    screen = pygame.display.set_mode((sample.WIDTH, sample.HEIGHT))
    font = pygame.font.Font(None, 26)
    command = [sys.executable, "-m", "playhooks", "emulate", "--port", "0"]
    emulator = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    url = emulator.stdout.readline().strip().rsplit(" ", 1)[-1]
    spool = tempfile.mkdtemp(prefix="playhooks-bench-")
    tracker = playhooks.Tracker(
        [playhooks.PlayCamp("bench:key", url), playhooks.PlayFab("BENCH", "secret", url)], spool_dir=spool
    )
    results = {"off": [], "on": []}
    try:
        for _ in range(blocks):
            results["off"] += run_block(sample, screen, font, None, frames)
            results["on"] += run_block(sample, screen, font, tracker, frames)
        pending = tracker.close(timeout=30)
        stats = tracker.stats()
    finally:
        emulator.terminate()
        emulator.wait(10)
        emulator.stdout.close()
        pygame.quit()

    (off_median, off_tail), (on_median, on_tail) = summary(results["off"]), summary(results["on"])
    print(f"{'pygame-ce' if getattr(pygame, 'IS_CE', False) else 'pygame'} {pygame.version.ver}, Python {sys.version.split()[0]}")
    print(f"{len(results['on'])} frames each, {EXTRA_EVENTS} extra events a frame, 60 fps\n")
    print(f"{'tracking':10} {'median':>10} {'p99.9':>10}   (milliseconds of work per frame)")
    print(f"{'off':10} {off_median * 1000:10.3f} {off_tail * 1000:10.3f}")
    print(f"{'on':10} {on_median * 1000:10.3f} {on_tail * 1000:10.3f}")
    print(f"\non / off: median x{on_median / off_median:.2f} ({(on_median - off_median) * 1000:+.3f} ms),"
          f" p99.9 {(on_tail - off_tail) * 1000:+.3f} ms")
    print(f"delivered: sent {stats['confirmed_by_service']}, pending {pending}, dropped {stats['dropped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
