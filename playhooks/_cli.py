"""The ``playhooks`` command: ``demo``, ``emulate``, ``relay``, ``renpy`` and ``spool``, and ``--version``."""

import argparse
import math
import signal
import sys
import threading
from typing import Callable, List, NoReturn, Optional, Type, TypeVar

_Number = TypeVar("_Number", int, float)


class _Parser(argparse.ArgumentParser):
    """Says what is wrong in one line that names the flag; the usage is one ``--help`` away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Optional[List[str]] = None) -> int:
    from . import __version__, _spool_cli

    parser = _Parser(prog="playhooks", description="Play-session telemetry for Python games.")
    parser.add_argument("--version", action="version", version=f"playhooks {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="play a simulated session and print the payloads it sends")
    emulate = commands.add_parser("emulate", help="serve local stand-ins of the PlayCamp and PlayFab APIs")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    port = _number(int, 0, 65535, "a port from 0 to 65535")
    emulate.add_argument("--port", type=port, default=8787, help="port to listen on; 0 picks a free one (default: 8787)")
    emulate.add_argument("--record", metavar="FILE.jsonl", type=_appendable, help="append every accepted payload to this file")
    share = _number(float, 0, 1, "a share from 0 to 1")
    emulate.add_argument("--fault-rate", type=share, default=0.0, help="share of requests given a random fault (0 to 1)")
    emulate.add_argument("--seed", type=int, help="seed for the random faults, for repeatable runs")
    at_least_one = _number(int, 1, math.inf, "a whole number, 1 or more")
    emulate.add_argument("--rate-limit", type=at_least_one, help="requests allowed per second and key; past it, 429")
    seconds = _number(float, 0, threading.TIMEOUT_MAX, "a number of seconds, 0 or more")
    emulate.add_argument(
        "--latency", type=seconds, default=0.0, help="seconds added to every API request, as over a real network (default: 0)"
    )
    emulate.add_argument("--quiet", action="store_true", help="print no line per API request (the live page still shows them)")
    relay = commands.add_parser("relay", help="serve the relay that forwards shipped games' payloads with the studio's keys")
    relay.add_argument("--config", required=True, metavar="FILE.toml", help="the relay's configuration")
    relay.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    relay.add_argument("--port", type=port, default=8788, help="port to listen on; 0 picks a free one (default: 8788)")
    relay.add_argument("--spool-dir", metavar="DIR", help="where accepted payloads wait (default: the config's, else the user's data folder)")
    relay.add_argument("--threads", type=at_least_one, default=8, help="requests served at once (default: 8)")
    relay.add_argument("--check", action="store_true", help="check the configuration and its secrets' variables, then exit")
    renpy = commands.add_parser("renpy", help="put playhooks into a Ren'Py game, or take it out")
    renpy_commands = renpy.add_subparsers(dest="renpy_command", required=True)
    renpy_install = renpy_commands.add_parser("install", help="playhooks and its dependencies into GAME_DIR/game/python-packages")
    renpy_install.add_argument("game_dir", metavar="GAME_DIR", help="the Ren'Py project (the folder that holds game/)")
    renpy_install.add_argument(
        "--python",
        choices=["3.9", "3.12"],
        help="the engine's Python: 3.9 for Ren'Py 8.0 to 8.3, 3.12 for 8.4 and later"
        " (default: the Python of the SDK the game is in, else 3.9)",
    )
    renpy_uninstall = renpy_commands.add_parser("uninstall", help="remove exactly what install added")
    renpy_uninstall.add_argument("game_dir", metavar="GAME_DIR", help="the Ren'Py project")
    _spool_cli.add_parser(commands)
    arguments = parser.parse_args(argv)
    if arguments.command == "demo":
        from ._demo import run

        return run(sys.stdout)
    if arguments.command == "relay":
        return _relay(arguments)
    if arguments.command == "renpy":
        return _renpy(arguments)
    if arguments.command == "spool":
        return _spool_cli.run(arguments)
    return _emulate(arguments)


def _number(kind: Type[_Number], low: float, high: float, what: str) -> Callable[[str], _Number]:
    def parse(text: str) -> _Number:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:  # NaN fails the comparison too
            raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})")
        return value

    return parse


def _appendable(path: str) -> str:
    # The emulator's start would fail on it too; here, the error names the flag and comes before serving.
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot append to {path!r}: {error.strerror}") from None
    return path


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
            latency=arguments.latency,
        )
        emulator.start()
    except (OSError, ValueError) as error:
        print(f"playhooks emulate: {error}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stopping.set())
    print(f"playhooks emulator: PlayCamp and PlayFab on {emulator.url}", flush=True)
    print(f"live page: {emulator.page_url}", flush=True)
    printed = 0
    while not stopping.is_set():
        # Woken as each request is answered (and twice a second, to see a signal); what was
        # answered before a SIGTERM is still printed.
        emulator.wait_until(lambda e: stopping.is_set() or bool(e.activity(after=printed, limit=1)), 0.5)
        for entry in emulator.activity(after=printed):
            printed = entry["seq"]
            if not arguments.quiet:
                status = "-" if entry["status"] is None else entry["status"]
                reason = f": {entry['reason']}" if entry["reason"] else ""
                print(f"{entry['method']} {entry['route']} {status} {entry['outcome']}{reason}", flush=True)
    emulator.stop()
    return 0


def _relay(arguments: argparse.Namespace) -> int:
    from ._errors import ConfigurationError
    from .relay import load_config, serve

    try:
        if arguments.check:
            config = load_config(arguments.config)
            services = ", ".join(sorted(config.upstreams))
            print(f"playhooks relay: {arguments.config} is usable: forwards to {services}; {len(config.keys)} ingest key(s)")
            return 0
        import logging

        # A service's log goes to its supervisor: refusals, upstream trouble and reloads, never a key.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        serve(arguments.config, arguments.host, arguments.port, arguments.spool_dir, arguments.threads)
    except (ConfigurationError, OSError) as error:
        print(f"playhooks relay: {error}", file=sys.stderr)
        return 1
    return 0


def _renpy(arguments: argparse.Namespace) -> int:
    from ._errors import ConfigurationError
    from ._renpy_install import DEFAULT_PYTHON, ENGINE_PYTHONS, engine_python, install, packages_folder, uninstall

    try:
        if arguments.renpy_command == "install":
            found = engine_python(arguments.game_dir)
            python = arguments.python or (found[0] if found else DEFAULT_PYTHON)
            if found is None:
                why = f"no Ren'Py SDK found with the game, so {ENGINE_PYTHONS[python]}; --python to choose"
            elif python != found[0]:
                why = f"as asked, though {found[1]} runs Python {found[0]}"
            else:
                why = f"for {found[1]}"
            print(f"playhooks renpy: Python {python} ({why})")
            added = install(arguments.game_dir, python)
            print(f"playhooks renpy: into {packages_folder(arguments.game_dir)}: {', '.join(added)}")
        else:
            removed = uninstall(arguments.game_dir)
            print(f"playhooks renpy: removed {', '.join(removed) if removed else 'nothing (playhooks was not installed there)'}")
    except (ConfigurationError, OSError) as error:
        print(f"playhooks renpy: {error}", file=sys.stderr)
        return 1
    return 0
