"""The ``playhooks`` command."""

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="playhooks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="play a simulated session and print the payloads it sends")
    arguments = parser.parse_args(argv)
    if arguments.command == "demo":
        from ._demo import run

        return run(sys.stdout)
    return 2  # pragma: no cover - argparse refuses unknown commands first
