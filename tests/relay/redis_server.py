"""A real ``redis-server`` for tests: on a free loopback port, in a folder of its own, stopped after.

    with RedisServer(tmp_path) as server:
        client = redis.Redis.from_url(server.url)

    redis_server = redis_server_fixture()     # in a test module: a fixture of that name

It is started as the relay's docs say (``--save ''`` with ``--appendonly yes``: durable through its
append-only log, no snapshots), and is ready when it answers PING on its socket: polled, never a
fixed sleep. ``stop`` and ``start`` again keep the folder, so a test can restart it and see what
survived. A machine without ``redis-server`` or the ``redis`` package skips the test, saying which.
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import threading
import time
from typing import Any, Callable, Iterator, Optional, Union

import pytest

START_TIMEOUT = 10.0  # seconds for redis-server to answer PING (it takes about 0.06 on a quiet machine)
STOP_TIMEOUT = 10.0
_POLL = 0.005


def skip_unless_available() -> None:
    """Skip the calling test unless both ``redis-server`` and the ``redis`` package are there; in
    CI (``CI`` set), fail instead: there they are installed, and a skip would hide their absence."""
    missing = None
    if shutil.which("redis-server") is None:
        missing = "redis-server is not installed (Debian: apt-get install redis-server)"
    elif importlib.util.find_spec("redis") is None:
        missing = "the redis package is not installed (pip install 'playhooks[relay-redis]')"
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers_ping(port: int, timeout: float = 0.5) -> bool:
    """Whether something on ``127.0.0.1:port`` answers a Redis PING with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(b"*1\r\n$4\r\nPING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process.

    Args:
        directory: its working folder (append-only log, log file); made if missing.
        port: where it listens; None picks a free one on the first start, kept across restarts.
    """

    def __init__(self, directory: "Union[str, os.PathLike[str]]", port: Optional[int] = None) -> None:
        self.directory = os.fspath(directory)
        self.port = port
        self._process: "Optional[subprocess.Popen[bytes]]" = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start the server first"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> "RedisServer":
        """Start it and wait until it answers PING. Raises RuntimeError (with its log) if it does not."""
        os.makedirs(self.directory, exist_ok=True)
        for last_try in (False, False, True):  # a free port may be taken by someone else meanwhile
            port = self.port or _free_port()
            self._process = subprocess.Popen(
                [
                    "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "yes",
                    "--dir", self.directory, "--logfile", "redis.log", "--daemonize", "no",
                ],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + START_TIMEOUT
            pause = threading.Event()
            while self._process.poll() is None and time.monotonic() < deadline:
                if answers_ping(port):
                    self.port = port
                    return self
                pause.wait(_POLL)
            self._end()
            if last_try or self.port is not None:
                raise RuntimeError(f"redis-server did not answer on port {port}:\n{self.log()}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop it (SIGTERM: it finishes writing its append-only log first) and wait for the end."""
        self._end()

    def _end(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        else:
            process.wait()

    def log(self) -> str:
        try:
            with open(os.path.join(self.directory, "redis.log"), encoding="utf-8", errors="replace") as file:
                return file.read()[-4000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def redis_server_fixture(scope: str = "function") -> Callable[..., Iterator[RedisServer]]:
    """A pytest fixture of a running ``RedisServer`` (skipping the test if there can be none).

    Assign it in a test module: ``redis_server = redis_server_fixture()``.
    """

    @pytest.fixture(scope=scope)
    def redis_server(tmp_path_factory: Any) -> Iterator[RedisServer]:
        skip_unless_available()
        with RedisServer(tmp_path_factory.mktemp("redis")) as server:
            yield server

    return redis_server
