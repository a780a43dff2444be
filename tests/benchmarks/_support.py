"""What the delivery benchmarks share: the emulator in its own process, a bare urllib3 client that
sends exactly what playhooks sends, a backlog written by a tracker whose requests are held, and a
header that says which playhooks was measured.

Every benchmark runs against whichever playhooks ``import playhooks`` finds, so today's code and
an older checkout are measured by the same script in the same session::

    python tests/benchmarks/bench_rate.py                            # this checkout
    PYTHONPATH=/tmp/bench-old python tests/benchmarks/bench_rate.py  # an older one

The header prints the path that was imported; a ``PYTHONPATH`` that did not win is an error. The
emulator runs from the same checkout as the client unless ``--emulator-root`` names another, so
an old client can also be measured against a new emulator.

Only public APIs are used, plus ``stats()``, ``flush(timeout)`` and ``close(timeout)``; the spool
cost benchmark opens ``playhooks._spool.Spool`` itself.
"""

import contextlib
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import attrs
import urllib3

import playhooks

PLAYER = {"playfab_id": "4F1C2A9B7D3E8A61", "character_id": "8D2E0F4B1A6C9E37"}
BODY = {"level": 3, "coins": 120}
TITLE_ID, SECRET_KEY = "ABCD", "secret"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(playhooks.__file__)))
POLL = 0.02  # seconds between looks at the emulator's counters while waiting with a deadline

# Runs `playhooks emulate` from the checkout named by argv[1], whatever the current folder and the
# editable install would pick, and refuses to run another one.
_EMULATOR_CODE = """
import os, runpy, sys
root = sys.argv[1]
sys.path.insert(0, root)
import playhooks
if not os.path.abspath(playhooks.__file__).startswith(os.path.join(root, "")):
    sys.exit(f"emulator: playhooks from {playhooks.__file__}, not from {root}")
sys.argv = ["playhooks", *sys.argv[2:]]
runpy.run_module("playhooks", run_name="__main__", alter_sys=True)
"""


# -- what is measured ----------------------------------------------------------------------------


def add_common_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds, as the test suite does")
    parser.add_argument(
        "--max-in-flight", type=int, metavar="N", help="requests in flight per service (passed only where Settings has it)"
    )
    parser.add_argument("--emulator-root", metavar="DIR", default=ROOT, help="the checkout the emulator runs from")


def header(title, arguments=None):
    """Print what is measured: Python, machine, which playhooks (and emulator) and its commit."""
    check_import_path()
    print(title)
    print(f"Python {sys.version.split()[0]} on {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"playhooks: {os.path.abspath(playhooks.__file__)} ({describe_checkout(ROOT)})")
    emulator_root = getattr(arguments, "emulator_root", None)
    if emulator_root is not None:
        same = os.path.abspath(emulator_root) == ROOT
        print(f"emulator:  `playhooks emulate` in its own process, from {'the same checkout' if same else emulator_root}"
              + ("" if same else f" ({describe_checkout(emulator_root)})"))


def check_import_path():
    """Exit when ``PYTHONPATH`` names a folder but playhooks came from elsewhere (the editable
    install's finder, or the current folder, would then measure the wrong code)."""
    entries = [os.path.abspath(entry) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    here = os.path.abspath(playhooks.__file__)
    if entries and not any(here.startswith(os.path.join(entry, "")) for entry in entries):
        sys.exit(f"playhooks was imported from {here}, not from PYTHONPATH={os.environ['PYTHONPATH']}")


def describe_checkout(root):
    try:
        commit = subprocess.run(
            ["git", "-C", root, "log", "-1", "--format=%h %s"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "playhooks"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    if not commit:
        return "not a git checkout"
    if len(commit) > 60:
        commit = commit[:57] + "..."
    return commit + (" + uncommitted changes" if changed else "")


def settings_overrides(arguments=None, **overrides):
    """The settings a benchmark passes: these, plus ``max_in_flight`` when asked for and this
    checkout's Settings has the field (an older checkout has not: then it is left out, and said)."""
    fields = attrs.fields_dict(playhooks.Settings)
    max_in_flight = getattr(arguments, "max_in_flight", None)
    if max_in_flight is not None:
        if "max_in_flight" in fields:
            overrides["max_in_flight"] = max_in_flight
        else:
            print(f"(--max-in-flight {max_in_flight} ignored: this checkout's Settings has no max_in_flight)")
    unknown = set(overrides) - set(fields)
    if unknown:
        sys.exit(f"this checkout's Settings has no {', '.join(sorted(unknown))}")
    return overrides


def print_settings(label, overrides):
    """The settings in full (the defaults of the checkout measured, and the overrides)."""
    shown = playhooks.Settings(**overrides)
    fields = [
        f"{name}={getattr(shown, name)!r}" for name, field in attrs.fields_dict(playhooks.Settings).items()
        if field.repr and name not in ("spool_dir", "clock")
    ]
    changed = ", ".join(sorted(overrides)) or "none"
    print(f"{label} settings (overridden: {changed}):")
    line = " "
    for field in fields:
        if len(line) + len(field) > 100:
            print(line)
            line = " "
        line += " " + field
    print(line)


def has_setting(name):
    return name in attrs.fields_dict(playhooks.Settings)


def quiet():
    """The trackers of a benchmark end hung requests on purpose: no tracebacks for them."""
    logging.getLogger("playhooks").setLevel(logging.CRITICAL)


def percentile(ordered, fraction):
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@contextlib.contextmanager
def spool_folder():
    """A fresh spool; removed afterwards even while a closed tracker's hung request still writes."""
    folder = tempfile.mkdtemp(prefix="playhooks-bench-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def wait_until(predicate, timeout, poll=0.001):
    """Poll ``predicate`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        time.sleep(poll)
    return True


def dropped(tracker):
    return {reason: count for reason, count in tracker.stats()["dropped"].items() if count}


# -- the emulator --------------------------------------------------------------------------------


def emulator_help(root=ROOT):
    command = [sys.executable, "-c", _EMULATOR_CODE, os.path.abspath(root), "emulate", "--help"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tempfile.gettempdir()).stdout


class Emulator:
    """``playhooks emulate`` in a child process, and its control API (``/_emulator/...``)."""

    def __init__(self, root=ROOT, *options):
        self.root = os.path.abspath(root)
        self.options = [str(option) for option in options]

    def __enter__(self):
        command = [sys.executable, "-c", _EMULATOR_CODE, self.root, "emulate", "--port", "0", *self.options]
        # In an empty folder: a checkout in the current folder must not be imported instead.
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
        line = self.process.stdout.readline()
        found = re.search(r"http://\S+", line)
        if found is None:
            self.process.kill()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = found.group(0).rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        self.host, self.port = parsed.hostname, parsed.port
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))
        return self

    def control(self, method, name, body=None):
        response = self.http.request(method, f"{self.url}/_emulator/{name}", body=json.dumps(body) if body else None)
        if response.status != 200:
            raise RuntimeError(f"emulator {method} {name}: {response.status} {response.data[:200]!r}")
        return json.loads(response.data)

    def counters(self):
        return self.control("GET", "counters")["counters"]

    def reset(self):
        self.control("POST", "reset")

    def delay_next(self, count, seconds):
        self.control("POST", "faults", {"kind": "delay", "count": count, "seconds": seconds})

    def fail_everything(self):
        self.control("POST", "faults", {"kind": "status", "count": 10**9, "status": 503})

    def wait_for_events(self, count, timeout, poll=POLL):
        """Poll the counters until the emulator has ``count`` events or ``timeout`` passes; the counters."""
        deadline = time.perf_counter() + timeout
        while True:
            counters = self.counters()
            if counters["events"] >= count or time.perf_counter() > deadline:
                return counters
            time.sleep(poll)

    def __exit__(self, *exc_info):
        self.http.clear()
        end_process(self.process)


def end_process(process):
    """Stop a server process of a benchmark's: asked first, killed after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    process.stdout.close()


# -- the bare urllib3 baseline -------------------------------------------------------------------


@attrs.frozen
class Request:
    """One character event's request as playhooks sends it."""

    path: str
    headers: dict
    body: bytes


def captured_event_request(overrides=None):
    """The path, headers and body a tracker sends for one character event, read off the wire by a
    one-shot loopback server (so the baseline sends what this checkout sends, whatever it is)."""

    def send(url):
        with spool_folder() as folder:
            tracker = playhooks.Tracker([playhooks.PlayFab(TITLE_ID, SECRET_KEY, url)], spool_dir=folder, **(overrides or {}))
            tracker.on_character_event("coin_collected", body={"n": 0}, **PLAYER)
            yield
            tracker.close(timeout=5)

    answer = {"code": 200, "status": "OK", "data": {"EventId": "0" * 32}}
    return _captured_request(send, b"200 OK", answer)


def _captured_request(send, status, answer):
    """The first request ``send(url)`` makes, read by a one-shot loopback server that answers it
    ``status`` and ``answer``. ``send`` is a generator: it sends, yields while the request is
    read, then tidies up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(30)
    seen = {}

    def serve():
        connection, _ = listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
            length = int({name.lower(): value for name, value in headers.items()}.get("content-length", "0"))
            while len(body) < length:
                body += connection.recv(65536)
            reply = json.dumps(answer).encode()
            connection.sendall(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(reply)}\r\n\r\n".encode()
                + reply
            )
            seen.update(line=lines[0], headers=headers, body=body[:length])

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    sending = send(f"http://127.0.0.1:{listener.getsockname()[1]}")
    next(sending)
    server.join(30)
    next(sending, None)
    listener.close()
    if "line" not in seen:
        raise RuntimeError("the tracker sent no request to the capturing server")
    path = seen["line"].split(" ")[1]
    # urllib3 adds these itself; everything else goes as playhooks sent it.
    headers = {name: value for name, value in seen["headers"].items() if name.lower() not in ("host", "content-length")}
    return Request(path, headers, seen["body"])


def bare_send(emulator, request, count, connections=1):
    """Seconds a bare urllib3 client takes to POST ``request`` ``count`` times, serially on each of
    ``connections`` threads, each with its own kept-alive connection; and how many answers were
    not a 200."""
    numbers = iter(range(count))
    lock = threading.Lock()
    failures = []

    def next_number():
        with lock:
            return next(numbers, None)

    def run():
        pool = urllib3.HTTPConnectionPool(
            emulator.host, emulator.port, maxsize=1, retries=False, timeout=urllib3.Timeout(connect=5, read=60)
        )
        bad = 0
        while next_number() is not None:
            response = pool.request("POST", request.path, body=request.body, headers=request.headers)
            if response.status != 200:
                bad += 1
        pool.close()
        failures.append(bad)

    threads = [threading.Thread(target=run) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, sum(failures)


def check_delay_fault(emulator, request, seconds=0.3):
    """Show that a scripted delay holds only the request it applies to: a request sent meanwhile on
    another connection, and the one after, are answered at once. Returns (ok, description)."""
    def pool():
        return urllib3.HTTPConnectionPool(emulator.host, emulator.port, maxsize=1, retries=False, timeout=30)

    first, second = pool(), pool()
    first.request("GET", "/_emulator/counters")  # both connected before timing
    second.request("GET", "/_emulator/counters")
    emulator.reset()
    emulator.delay_next(1, seconds)
    took = {}

    def delayed():
        started = time.perf_counter()
        first.request("POST", request.path, body=request.body, headers=request.headers)
        took["delayed"] = time.perf_counter() - started

    thread = threading.Thread(target=delayed)
    thread.start()
    wait_until(lambda: emulator.counters()["faults"] >= 1, 10, poll=0.002)
    started = time.perf_counter()
    second.request("POST", request.path, body=request.body, headers=request.headers)
    took["meanwhile"] = time.perf_counter() - started
    thread.join()
    started = time.perf_counter()
    second.request("POST", request.path, body=request.body, headers=request.headers)
    took["after"] = time.perf_counter() - started
    first.close()
    second.close()
    emulator.reset()
    ok = took["delayed"] >= seconds and took["meanwhile"] < seconds / 3 and took["after"] < seconds / 3
    return ok, (
        f"a {seconds * 1000:.0f} ms delay fault: the request it applied to took {took['delayed'] * 1000:.0f} ms,"
        f" one sent meanwhile on another connection {took['meanwhile'] * 1000:.1f} ms, the next one"
        f" {took['after'] * 1000:.1f} ms"
    )


def check_latency(emulator, request, seconds):
    """The same check for an emulator started with ``--latency``: every request takes the added
    time, and two at once on two connections take it side by side, not one after the other."""
    pools = [urllib3.HTTPConnectionPool(emulator.host, emulator.port, maxsize=1, retries=False, timeout=30) for _ in range(2)]
    for pool in pools:
        pool.request("POST", request.path, body=request.body, headers=request.headers)
    took = []

    def send(pool):
        started = time.perf_counter()
        pool.request("POST", request.path, body=request.body, headers=request.headers)
        took.append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=(pool,)) for pool in pools]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    both = time.perf_counter() - started
    for pool in pools:
        pool.close()
    emulator.reset()
    ok = min(took) >= seconds and both < 1.8 * seconds
    return ok, (
        f"--latency {seconds}: two requests at once on two connections took"
        f" {', '.join(f'{value * 1000:.1f}' for value in took)} ms, {both * 1000:.1f} ms together"
    )


# -- a backlog -----------------------------------------------------------------------------------


class BlackHole:
    """A loopback port that takes requests and answers none until ``release()``, which closes every
    connection: the held requests then end at once with no answer (to be retried)."""

    def __enter__(self):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._connections = []
        self._open = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self):
        while self._open:
            try:
                connection, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            self._connections.append(connection)

    def release(self):
        if not self._open:
            return
        self._open = False
        self._thread.join(5)
        self._listener.close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def __exit__(self, *exc_info):
        self.release()


@contextlib.contextmanager
def held_tracker(folder, playcamp=False, **settings):
    """A tracker whose services never answer while the block runs, so what it accepts stays in the
    spool. On the way out it is closed, its held requests are ended (their records go back to the
    queue, due at once), and its threads are waited for: the spool is then a backlog no live tracker
    owns. The tracker retries fast, so the records of its held requests are due again at once."""
    quiet()
    threads_before = set(threading.enumerate())
    settings.setdefault("retry", playhooks.RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=10_000))
    settings.setdefault("read_timeout", 600)
    with BlackHole() as hole:
        sinks = [playhooks.PlayFab(TITLE_ID, SECRET_KEY, hole.url)]
        if playcamp:
            sinks.insert(0, playhooks.PlayCamp("key:secret", hole.url))
        tracker = playhooks.Tracker(sinks, spool_dir=folder, **settings)
        try:
            yield tracker
        finally:
            tracker.close(timeout=0.2)
            hole.release()
    deadline = time.perf_counter() + 30
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(max(0.0, deadline - time.perf_counter()))
    left = [thread.name for thread in set(threading.enumerate()) - threads_before if thread.is_alive()]
    if left:
        print(f"  (warning: the filler's threads {left} still run after 30 s; its claims may be held)")


def wait_spooled(tracker, count, timeout=120):
    """Wait until ``count`` records are in the spool, or fewer when some were dropped; whether they are."""
    return wait_until(lambda: tracker.stats()["written_to_spool"] + sum(tracker.stats()["dropped"].values()) >= count, timeout)


def fill_events(tracker, count, chunk, name="backlog", start=0):
    """``count`` events, ``chunk`` at a time, each chunk in the spool before the next: a game
    emitting over time, so no chunk meets the in-memory queue's bound. Returns the spooled count."""
    base = tracker.stats()["written_to_spool"]
    for first in range(0, count, chunk):
        for number in range(first, min(count, first + chunk)):
            tracker.on_character_event(name, body={"n": start + number}, **PLAYER)
        if not wait_spooled(tracker, base + min(count, first + chunk), timeout=120):
            break
    return tracker.stats()["written_to_spool"] - base


def filler_settings(chunk):
    """The filler's rounds come every 5 ms so a chunk is spooled at once; its queue holds a chunk."""
    return {"flush_interval": 0.005, "max_queue": max(chunk * 2, 10_000)}


# -- sessions, for bench_delivery and the report -------------------------------------------------


def fill_sessions(filler, count, chunk):
    """``count`` sessions of a minute each (the filler runs on a ``ManualClock``), ``chunk`` at a
    time, each chunk in the spool before the next. Returns the spooled count."""
    base = filler.stats()["written_to_spool"]
    for first in range(0, count, chunk):
        opened = [filler.on_session_start(f"player-{number}") for number in range(first, min(count, first + chunk))]
        filler.settings.clock.advance(60)
        for session in opened:
            filler.on_session_end(session)
        wait_spooled(filler, base + first + len(opened))
    return filler.stats()["written_to_spool"] - base


def captured_session_request():
    """The path, headers and body of one PlayCamp session as a tracker sends it (not through the
    bulk endpoint), as ``captured_event_request`` reads an event's."""
    from playhooks.testing import ManualClock

    def send(url):
        with spool_folder() as folder:
            tracker = playhooks.Tracker([playhooks.PlayCamp("key:secret", url)], spool_dir=folder, clock=ManualClock())
            session = tracker.on_session_start("player-1")
            tracker.settings.clock.advance(60)
            tracker.on_session_end(session)
            yield
            tracker.close(timeout=5)

    return _captured_request(send, b"201 Created", {"data": {"recorded": True}})


def bare_post(emulator, path, headers, bodies):
    """Seconds a bare urllib3 client takes to POST each of ``bodies`` to ``path`` serially on one
    kept-alive connection, and how many answers were not a 200 or 201."""
    pool = urllib3.HTTPConnectionPool(emulator.host, emulator.port, maxsize=1, retries=False, timeout=urllib3.Timeout(connect=5, read=60))
    bad = 0
    started = time.perf_counter()
    for body in bodies:
        response = pool.request("POST", path, body=body, headers=headers)
        if response.status not in (200, 201):
            bad += 1
    took = time.perf_counter() - started
    pool.close()
    return took, bad
