"""The ``playhooks`` command: ``playhooks demo``, ``playhooks emulate``."""

import argparse
import signal
import sys
import threading
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="playhooks", description="Play-session telemetry for Python games.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="play a simulated session and print the payloads it sends")
    emulate = commands.add_parser("emulate", help="serve local stand-ins of the PlayCamp and PlayFab APIs")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    emulate.add_argument("--port", type=int, default=8787, help="port to listen on; 0 picks a free one (default: 8787)")
    emulate.add_argument("--record", metavar="FILE.jsonl", help="append every accepted payload to this file")
    emulate.add_argument("--fault-rate", type=float, default=0.0, help="share of requests given a random fault (0 to 1)")
    emulate.add_argument("--seed", type=int, help="seed for the random faults, for repeatable runs")
    emulate.add_argument("--rate-limit", type=int, help="requests allowed per second and key; past it, 429")
    arguments = parser.parse_args(argv)
    if arguments.command == "demo":
        from ._demo import run

        return run(sys.stdout)
    return _emulate(arguments)


def _emulate(arguments: argparse.Namespace) -> int:
    from .emulator import Emulator

    try:
        emulator = Emulator(
            host=arguments.host,
            port=arguments.port,
            record=arguments.record,
            fault_rate=arguments.fault_rate,
            seed=arguments.seed,
            rate_limit=arguments.rate_limit,
        )
        emulator.start()
    except (OSError, ValueError) as error:
        print(f"playhooks emulate: {error}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stopping.set())
    print(f"playhooks emulator: PlayCamp and PlayFab on {emulator.url}", flush=True)
    while not stopping.wait(0.5):
        pass
    emulator.stop()
    return 0
