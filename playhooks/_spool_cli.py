"""``playhooks spool``: look at a spool folder, and mend it. (Being written: see issue 12.)"""

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    """The ``spool`` command and its subcommands, on the ``playhooks`` parser's ``commands``."""
    commands.add_parser("spool", help="look at a spool folder: what waits, what was given up on")


def run(arguments: argparse.Namespace) -> int:
    raise NotImplementedError("playhooks spool")
