"""A game's first second: what making a tracker costs the game's start, and what the tracker's
own start costs the first frames and the first events.

    python tests/benchmarks/bench_start.py                       # 12 fresh games
    python tests/benchmarks/bench_start.py --burners 6           # beside 6 busy processes: a starved machine
    python tests/benchmarks/bench_start.py --compare /tmp/old    # another checkout's games, taking turns
    python tests/benchmarks/bench_start.py --quick               # 2 games, a smoke run

Each game is a fresh interpreter (this file with ``--game``) that imports playhooks, makes a
tracker with PlayCamp and PlayFab sinks and a new spool, starts a session and plays one second
at 60 fps with 3 events a frame. Its sinks point at a loopback port nothing listens on, so it
sends nothing and the sender retries. It reports how long ``Tracker()`` took, how late its frames
woke at worst, and how long its first event took to reach the spool. Medians and maxima over the
games; with ``--compare``, the two checkouts' games take turns.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

FPS = 60
EVENTS_PER_FRAME = 3
PLAY_SECONDS = 1.0
UNUSED_URL = "http://127.0.0.1:9"


def game(spool):
    """One game's first second, in this fresh interpreter; prints its figures as one JSON line."""
    import playhooks
    from playhooks._spool import _list

    made = time.monotonic()
    tracker = playhooks.Tracker(
        [playhooks.PlayCamp("bench:secret", UNUSED_URL), playhooks.PlayFab("ABCD", "secret", UNUSED_URL)], spool_dir=spool
    )
    tracker_seconds = time.monotonic() - made
    tracker.on_session_start("player", playfab_id="4F1C2A9B7D3E8A61", character_id="8D2E0F4B1A6C9E37")
    began = time.monotonic()
    on_disk = []
    queue = os.path.join(spool, "playfab", "queue")

    def watch():  # a listing is a system call: the watcher takes the GIL for little
        while not on_disk and time.monotonic() < began + 5 * PLAY_SECONDS:
            if any(name.endswith(".jsonl") for name in _list(queue)):
                on_disk.append(time.monotonic() - began)
            time.sleep(0.001)

    threading.Thread(target=watch, daemon=True).start()
    worst, frame = 0.0, began
    while frame < began + PLAY_SECONDS:
        for number in range(EVENTS_PER_FRAME):
            tracker.on_character_event("tick", body={"n": number})
        frame += 1 / FPS
        time.sleep(max(0.0, frame - time.monotonic()))
        worst = max(worst, time.monotonic() - frame)
    figures = {"tracker_ms": tracker_seconds * 1000, "worst_late_ms": worst * 1000, "on_disk_ms": on_disk[0] * 1000 if on_disk else None}
    print(json.dumps(figures), flush=True)
    os._exit(0)  # the figures are out; the tracker's retries need not be waited for


def run_game(checkout):
    from bench_import import with_path  # here: a game's interpreter loads only what it measures

    environment = with_path(checkout, None)
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--game", os.path.join(folder, "spool")],
            capture_output=True, text=True, env=environment, cwd=folder, timeout=60, check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, help="fresh games per checkout (default 12, 2 with --quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--burners", type=int, default=0, help="busy processes beside the games, to starve the machine")
    parser.add_argument("--compare", metavar="CHECKOUT", help="also this checkout's games, taking turns")
    parser.add_argument("--game", metavar="SPOOL", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.game:
        game(arguments.game)
        return 0
    games = arguments.games or (2 if arguments.quick else 12)
    checkouts = {"this checkout": None}
    if arguments.compare:
        checkouts["compared"] = os.path.abspath(arguments.compare)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(arguments.burners)]
    results = {label: [] for label in checkouts}
    try:
        for _ in range(games):
            for label, checkout in checkouts.items():
                results[label].append(run_game(checkout))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    print(f"{games} games each, {arguments.burners} busy processes beside them, Python {sys.version.split()[0]}; milliseconds, median (max)")
    print(f"{'':16} {'Tracker()':>18} {'worst frame late':>18} {'first event on disk':>20}")
    for label, rows in results.items():
        cells = []
        for key in ("tracker_ms", "worst_late_ms", "on_disk_ms"):
            values = [row[key] for row in rows if row[key] is not None]
            missing = len(rows) - len(values)
            cell = f"{statistics.median(values):.1f} ({max(values):.1f})" if values else "-"
            cells.append(cell + (f" [{missing} never]" if missing else ""))
        print(f"{label:16} {cells[0]:>18} {cells[1]:>18} {cells[2]:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
