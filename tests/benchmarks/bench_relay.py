"""The relay's capacity on loopback: how many requests a second ``playhooks relay`` accepts from
games, at what latency, and how fast it forwards a stored backlog to the services.

    python tests/benchmarks/bench_relay.py             # the full run (about three minutes)
    python tests/benchmarks/bench_relay.py --quick     # a smoke run, as the tests do
    PYTHONPATH=/tmp/bench-old python tests/benchmarks/bench_relay.py    # an older checkout

Accepting: the relay serves in processes of its own, (a) ``playhooks relay`` (waitress, one
process, 8 threads) and (b) gunicorn with 2 ``gthread`` workers of 8 threads, forwarding to
``playhooks emulate`` (a process of its own) as it would in production. The load comes from
``--clients`` processes, each holding ``--connections`` kept-alive connections on which it sends
one request, waits for the answer and sends the next (a closed loop), with a bare socket and
ready-made headers so the client costs little of the shared CPUs. Each request is a PlayFab event
or a single PlayCamp session with a fresh id and the current time, as a game sends. After a
warm-up, requests sent and answered inside the measured window count; latency is from sending to
the whole answer. The CPU each process spent in the window (Linux: ``/proc``) says where the time
went. Before the next row the relay is let finish forwarding what it accepted.

Forwarding: a spool is filled with ``--backlog`` events and as many sessions by the relay's own
application called in this process without starting it (so nothing is forwarded yet; this also
times the application alone, and the share of it spent in ``os.fsync``, wrapped here to be timed).
A relay is then started on a copy of that spool, and the emulator's counters are watched until
every event (one request each) and every session (100 to a bulk request) has arrived.

The machine these run on may be shared: the load average is printed before and after, and the
numbers are for comparing rows of one run, not runs of different days. Nothing here asserts a speed.
"""

import argparse
import datetime
import functools
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

INGEST_KEY = "ik_bench_key_1"
SECRETS = {"PC_KEY": "key-1:very-secret", "PF_KEY": "PFSECRET123"}
EVENT_PATH = "/Server/WriteCharacterEvent"
SESSION_PATH = "/v1/server/playtime/sessions"
BULK_PATH = "/v1/server/playtime/sessions/bulk"
ROUTES = {"event": EVENT_PATH, "session": SESSION_PATH}
BULK_SIZE = 100  # sessions per bulk request in the backlog, as the relay forwards them
THREADS = 8  # per relay process, both servers
WORKERS = 2  # gunicorn's
POLL = 0.02  # seconds between looks at the emulator's counters
SOCKET_TIMEOUT = 30  # seconds a client waits for an answer before it counts an error

CONFIG = """\
[playcamp]
url = "{url}"
api_key_env = "PC_KEY"
[playfab]
title_id = "ABCD"
url = "{url}"
secret_key_env = "PF_KEY"
[[ingest_keys]]
key = "{key}"
game = "bench"
services = ["playcamp", "playfab"]
[limits]
requests_per_second_per_key = 1000000
requests_per_second_per_player = 1000000
"""

# gunicorn says when each worker has made its application: the load must not connect before both
# have, or the first worker up would hold every kept-alive connection.
GUNICORN_HOOKS = """\
import sys

def post_worker_init(worker):
    print(f"bench_relay: worker {worker.pid} ready", file=sys.stderr, flush=True)
"""


# -- what a game sends ---------------------------------------------------------------------------


def timestamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event_body(name):
    return {
        "CharacterId": "8D2E0F4B1A6C9E37",
        "EventName": "level_completed",
        "PlayFabId": "4F1C2A9B7D3E8A61",
        "Body": {"level": 3, "playhooks_event_id": uuid.uuid4().hex},
        "Timestamp": timestamp(datetime.datetime.now(datetime.timezone.utc)),
    }


def session_body(name):
    ended = datetime.datetime.now(datetime.timezone.utc)
    return {
        "sessionId": str(uuid.uuid4()),
        "userId": f"player-{name}",  # one player per request: the player rate limit is not what is measured
        "durationSeconds": 30,
        "startedAt": timestamp(ended - datetime.timedelta(seconds=30)),
        "endedAt": timestamp(ended),
    }


BODIES = {"event": event_body, "session": session_body}


# -- the load: a client process ------------------------------------------------------------------


class _Closed(Exception):
    """The relay closed the connection before answering."""


def exchange(sock, data, pending):
    """Send one request, read its answer whole; (status, whether the server closes, bytes past it)."""
    sock.sendall(data)
    while True:
        head, separator, rest = pending.partition(b"\r\n\r\n")
        if separator:
            lower = head.lower()
            found = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
            length = int(found.group(1)) if found else 0
            if len(rest) >= length:
                closes = re.search(rb"\r\nconnection:\s*close", lower) is not None
                return int(head[9:12]), closes, rest[length:]
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed()
        pending += chunk


def client(url, route, connections, measure_from, measure_until):
    """One load process: ``connections`` threads, each a kept-alive connection in a closed loop until
    ``measure_until``; prints JSON: the window's latencies and statuses, and the whole run's 2xx."""
    host, port = url.replace("http://", "").split(":")
    make_body, path = BODIES[route], ROUTES[route]
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {INGEST_KEY}\r\nContent-Type: application/json\r\n"
    )
    results = []
    started_sending = []

    def connect():
        sock = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def run(thread):
        latencies, statuses, errors, all_ok, number = [], {}, 0, 0, 0
        sock, pending = connect(), b""
        started_sending.append(time.time())
        while time.time() < measure_until:
            number += 1
            body = json.dumps(make_body(f"{os.getpid()}-{thread}-{number}")).encode()
            data = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            sent_at, clock = time.time(), time.perf_counter()
            try:
                status, closes, pending = exchange(sock, data, pending)
            except (OSError, _Closed):
                status, closes = None, True
            took = time.perf_counter() - clock
            all_ok += status is not None and 200 <= status < 300
            if sent_at >= measure_from and sent_at + took <= measure_until:
                if status is None:
                    errors += 1
                else:
                    latencies.append(round(took * 1000, 4))
                    statuses[status] = statuses.get(status, 0) + 1
            if closes:
                sock.close()
                sock, pending = connect(), b""
        sock.close()
        results.append((latencies, statuses, errors, all_ok))

    cpu = time.process_time()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = {}
    for _, counted, _, _ in results:
        for status, count in counted.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    print(json.dumps({
        "latencies": [latency for latencies, _, _, _ in results for latency in latencies],
        "statuses": statuses,
        "errors": sum(errors for _, _, errors, _ in results),
        "all_ok": sum(ok for _, _, _, ok in results),
        "late": max(started_sending, default=0) > measure_from,
        "cpu": time.process_time() - cpu,
    }))


# -- measuring processes -------------------------------------------------------------------------


def cpu_times(pids):
    """(user, system) CPU seconds of these processes, from /proc; None where there is no /proc."""
    if not os.path.isdir("/proc"):
        return None
    user = system = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
        system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return user, system


def cpu_seconds(pids):
    times = cpu_times(pids)
    return None if times is None else sum(times)


def filesystem(folder):
    """The type of the filesystem holding ``folder`` (an fsync on tmpfs costs nothing)."""
    try:
        with open("/proc/mounts") as file:
            mounts = [line.split()[1:3] for line in file]
    except OSError:
        return "unknown"
    folder = os.path.realpath(folder)
    holding = [point for point in mounts if folder == point[0] or folder.startswith(point[0].rstrip("/") + "/")]
    return max(holding, key=lambda point: len(point[0]))[1] if holding else "unknown"


class RelayProcess:
    """The relay under one server, in processes of its own, on ``spool``; ``url`` once ready."""

    LABELS = {
        "waitress": f"waitress, 1 process x {THREADS} threads",
        "gunicorn": f"gunicorn, {WORKERS} gthread workers x {THREADS}",
    }

    def __init__(self, kind, folder, config, spool):
        self.kind, self.folder, self.config, self.spool = kind, folder, config, spool
        self.label = self.LABELS[kind]

    def __enter__(self):
        import playhooks

        # The relay's processes import the playhooks this one did (the header names it).
        imported = os.path.dirname(os.path.dirname(os.path.abspath(playhooks.__file__)))
        path = os.pathsep.join(filter(None, [imported, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, **SECRETS, PYTHONPATH=path)
        env.update(PLAYHOOKS_RELAY_CONFIG=self.config, PLAYHOOKS_RELAY_SPOOL_DIR=self.spool)
        self.log_path = os.path.join(self.folder, f"{self.kind}-{os.path.basename(self.spool)}.log")
        self.log = open(self.log_path, "w")
        if self.kind == "waitress":
            command = [sys.executable, "-m", "playhooks", "relay", "--config", self.config, "--port", "0",
                       "--spool-dir", self.spool, "--threads", str(THREADS)]
        else:
            hooks = os.path.join(self.folder, "gunicorn_hooks.py")
            with open(hooks, "w") as file:
                file.write(GUNICORN_HOOKS)
            command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", str(WORKERS), "--threads", str(THREADS),
                       "-b", "127.0.0.1:0", "-c", hooks, *gunicorn_options(), "playhooks.relay:create_app()"]
        # In an empty folder: a checkout in the current folder must not be imported instead.
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=self.folder)
        try:
            self.url, self.pids = self._wait_ready(60)
        except BaseException:
            self._stop()
            raise
        return self

    def _wait_ready(self, timeout):
        if self.kind == "waitress":
            line = self.process.stdout.readline()
            found = re.search(r"http://\S+", line)
            if found is None:
                raise RuntimeError(f"the relay did not start: {line!r}; {self.log_tail()}")
            return found.group(0).rstrip("/"), [self.process.pid]
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with open(self.log_path) as file:
                text = file.read()
            listening = re.search(r"Listening at: (http://\S+)", text)
            workers = [int(pid) for pid in re.findall(r"bench_relay: worker (\d+) ready", text)]
            if listening and len(workers) >= WORKERS:
                return listening.group(1), [self.process.pid, *workers]
            if self.process.poll() is not None:
                break
            time.sleep(POLL)
        raise RuntimeError(f"gunicorn did not start {WORKERS} workers: {self.log_tail()}")

    def worker_cpu(self):
        return [cpu_seconds([pid]) for pid in self.pids[1:]]

    def log_tail(self):
        self.log.flush()
        with open(self.log_path) as file:
            return file.read()[-1500:]

    def _stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process.stdout.close()
        self.log.close()

    def __exit__(self, *exc_info):
        self._stop()


@functools.lru_cache(maxsize=None)
def gunicorn_options():
    """gunicorn 23 and later keep a control socket in the home folder; two at once would share it."""
    help_text = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True, timeout=60).stdout
    return ("--no-control-socket",) if "--no-control-socket" in help_text else ()


def available(kind):
    """Whether the server is installed where the relay's processes will look (this Python)."""
    return subprocess.run([sys.executable, "-c", f"import {kind}"], capture_output=True, timeout=60).returncode == 0


# -- accepting -----------------------------------------------------------------------------------


def accept_row(relay, emulator, route, arguments):
    """Load ``relay`` with ``route`` requests for the window; wait until it forwarded them all."""
    emulator.reset()
    counter = "events" if route == "event" else "sessions"
    launched = time.time()
    measure_from = launched + 0.5 + arguments.warmup  # 0.5 s for the client processes to start
    measure_until = measure_from + arguments.seconds
    command = [sys.executable, os.path.abspath(__file__), "--client", relay.url, route, str(arguments.connections),
               repr(measure_from), repr(measure_until)]
    clients = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(arguments.clients)]
    time.sleep(max(0.0, measure_from - time.time()))
    before = (cpu_times(relay.pids), cpu_seconds([emulator.process.pid]), emulator.counters()[counter], relay.worker_cpu())
    time.sleep(max(0.0, measure_until - time.time()))
    after = (cpu_times(relay.pids), cpu_seconds([emulator.process.pid]), emulator.counters()[counter], relay.worker_cpu())
    reports = []
    for process in clients:
        out, _ = process.communicate(timeout=arguments.seconds + arguments.warmup + 2 * SOCKET_TIMEOUT)
        if process.returncode != 0:
            raise SystemExit(f"a client failed (exit {process.returncode})")
        reports.append(json.loads(out))
    latencies = sorted(latency for report in reports for latency in report["latencies"])
    statuses = {}
    for report in reports:
        for status, count in report["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    accepted = sum(count for status, count in statuses.items() if status.startswith("2"))
    all_ok = sum(report["all_ok"] for report in reports)
    backlog = all_ok - emulator.counters()[counter]
    drain_started = time.perf_counter()
    drained = emulator.wait_for(counter, all_ok, arguments.drain_timeout)
    relay_cpu = None if after[0] is None or before[0] is None else [a - b for a, b in zip(after[0], before[0])]
    cpu = {
        "relay": None if relay_cpu is None else sum(relay_cpu),
        "relay_kernel": None if relay_cpu is None else relay_cpu[1],
        "emulator": delta(after[1], before[1]),
        "clients": sum(report["cpu"] for report in reports),
    }
    workers = [delta(a, b) for a, b in zip(after[3], before[3])]
    return {
        "rate": accepted / arguments.seconds,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "accepted": accepted,
        "refused": {status: count for status, count in statuses.items() if not status.startswith("2")},
        "errors": sum(report["errors"] for report in reports),
        "late": any(report["late"] for report in reports),
        "cpu": cpu,
        "workers": workers,
        "forwarded": after[2] - before[2],
        "backlog": backlog,
        "drained": time.perf_counter() - drain_started if drained else None,
        "seconds": arguments.seconds,
    }


def delta(after, before):
    return None if after is None or before is None else after - before


def percentile(ordered, fraction):
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def measure_accepting(emulator, kinds, folder, config, arguments):
    results = {}  # (kind, route) -> [row]
    for repeat in range(arguments.repeats):
        for kind in kinds:  # in turn, so that drift in the machine's load hits both servers
            spool = os.path.join(folder, f"accept-{kind}-{repeat}")
            with RelayProcess(kind, folder, config, spool) as relay:
                for route in ROUTES:
                    results.setdefault((kind, route), []).append(accept_row(relay, emulator, route, arguments))
            shutil.rmtree(spool, ignore_errors=True)
    return results


def print_accepting(results, arguments):
    total = arguments.clients * arguments.connections
    print(
        f"\nAccepting: {arguments.clients} client processes x {arguments.connections} kept-alive connections"
        f" ({total} requests in flight, closed loop),\n  {arguments.warmup:g} s warm-up, {arguments.seconds:g} s measured;"
        f" median of {arguments.repeats} round(s); the relay forwards to the emulator meanwhile"
    )
    print(f"  {'':44}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'2xx':>9}  not 2xx (2xx and not 2xx: all rounds)")
    for (kind, route), rows in results.items():
        rate = statistics.median(row["rate"] for row in rows)
        spread = f" ({min(r['rate'] for r in rows):.0f}-{max(r['rate'] for r in rows):.0f})" if len(rows) > 1 else ""
        refused = {}
        for row in rows:
            for status, count in row["refused"].items():
                refused[status] = refused.get(status, 0) + count
        errors = sum(row["errors"] for row in rows)
        bad = ", ".join(f"{count} x {status}" for status, count in sorted(refused.items())) or "none"
        bad += f", {errors} connection errors" if errors else ""
        bad += "  (a client started late: no warm-up)" if any(row["late"] for row in rows) else ""
        name = f"{RelayProcess.LABELS[kind]}, {route}"
        print(
            f"  {name:44}{rate:>8.0f}{statistics.median(r['p50'] for r in rows):>9.2f}"
            f"{statistics.median(r['p99'] for r in rows):>9.2f}{sum(r['accepted'] for r in rows):>9}  {bad}{spread}"
        )
    print("\n  Where the CPU went in the window: CPU microseconds per accepted request (of the relay's, the share")
    print("  spent in the kernel), the relay's cores busy; what it forwarded meanwhile, what was left, and how long")
    print("  it then took to forward that:")
    print(f"  {'':44}{'relay':>7}{'kernel':>8}{'client':>8}{'emulator':>9}{'cores':>7}   forwarded / left / drained in")
    for (kind, route), rows in results.items():
        def per_request(name):
            values = [row["cpu"][name] / row["accepted"] for row in rows if row["cpu"][name] is not None and row["accepted"]]
            return f"{statistics.median(values) * 1e6:.0f}" if values else "n/a"

        busy = [row["cpu"]["relay"] / row["seconds"] for row in rows if row["cpu"]["relay"] is not None]
        kernel = [row["cpu"]["relay_kernel"] / row["cpu"]["relay"] for row in rows if row["cpu"]["relay"]]
        last = rows[-1]
        drained = f"{last['drained']:.1f} s" if last["drained"] is not None else f"NOT within {arguments.drain_timeout:g} s"
        split = [w for w in last["workers"] if w is not None]
        workers = ""
        if len(split) > 1 and sum(split):
            workers = "  (workers " + "/".join(f"{100 * w / sum(split):.0f}" for w in split) + "% of it)"
        name = f"{RelayProcess.LABELS[kind]}, {route}"
        print(
            f"  {name:44}{per_request('relay'):>7}{f'{statistics.median(kernel):.0%}' if kernel else 'n/a':>8}"
            f"{per_request('clients'):>8}{per_request('emulator'):>9}{f'{statistics.median(busy):.2f}' if busy else 'n/a':>7}"
            f"   {last['forwarded']} / {last['backlog']} / {drained}{workers}"
        )


# -- forwarding ----------------------------------------------------------------------------------


def call(app, path, data):
    """One request to the relay's WSGI application in this process; (status, answer)."""
    body = json.dumps(data).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {INGEST_KEY}",
        "wsgi.input": io.BytesIO(body),
    }
    seen = []
    answer = b"".join(app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    return int(seen[0][:3]), json.loads(answer)


def fill_backlog(config, spool, count):
    """``count`` events and sessions stored by a relay that is never started; timings of the
    application alone, and of the fsyncs within."""
    from playhooks.relay import Relay, load_config

    real_fsync, fsyncs = os.fsync, []

    def timed_fsync(descriptor):
        started = time.perf_counter()
        try:
            real_fsync(descriptor)
        finally:
            fsyncs.append(time.perf_counter() - started)

    relay = Relay(load_config(config, environ=SECRETS), spool_dir=spool)
    os.fsync = timed_fsync
    timings = {}
    try:
        for kind in ("event", "bulk"):
            fsyncs.clear()
            started, stored = time.perf_counter(), 0
            if kind == "event":
                requests = count
                for number in range(count):
                    status, _ = call(relay, EVENT_PATH, event_body(number))
                    stored += status == 200
            else:
                requests = 0
                for first in range(0, count, BULK_SIZE):
                    sessions = [session_body(f"b{number}") for number in range(first, min(count, first + BULK_SIZE))]
                    status, answer = call(relay, BULK_PATH, {"sessions": sessions})
                    stored += answer["data"]["successful"] if status == 200 else 0
                    requests += 1
            took = time.perf_counter() - started
            timings[kind] = {
                "requests": requests, "stored": stored, "seconds": took, "fsyncs": len(fsyncs), "fsync_seconds": sum(fsyncs)
            }
    finally:
        os.fsync = real_fsync
        relay.close()
    return timings


def forward_row(kind, emulator, folder, config, filled, count, timeout):
    """Start a relay on a copy of the filled spool; when the first and the last of each arrived."""
    spool = os.path.join(folder, f"forward-{kind}")
    shutil.copytree(filled, spool)
    emulator.reset()
    samples, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            counters = emulator.counters()
            samples.append((time.perf_counter(), counters))
            if counters["events"] >= count and counters["sessions"] >= count:
                return
            stop.wait(POLL)

    launched = time.perf_counter()
    watcher = threading.Thread(target=watch)
    watcher.start()
    with RelayProcess(kind, folder, config, spool) as relay:
        ready = time.perf_counter()
        cpu_before = (cpu_seconds(relay.pids), cpu_seconds([emulator.process.pid]))
        watcher.join(timeout)
        stop.set()
        watcher.join()
        cpu = (delta(cpu_seconds(relay.pids), cpu_before[0]), delta(cpu_seconds([emulator.process.pid]), cpu_before[1]))
    shutil.rmtree(spool, ignore_errors=True)

    def first(predicate):
        return next((moment for moment, counters in samples if predicate(counters)), None)

    started = first(lambda c: c["requests"] > 0)
    last = samples[-1][1] if samples else {"events": 0, "sessions": 0, "requests": 0}
    return {
        "ready": ready - launched,
        "first": None if started is None else started - launched,
        "events_done": first(lambda c: c["events"] >= count),
        "sessions_done": first(lambda c: c["sessions"] >= count),
        "started": started,
        "events": last["events"],
        "sessions": last["sessions"],
        "requests": last["requests"],
        "cpu": cpu,
    }


def print_forwarding(timings, rows, count):
    event, bulk = timings["event"], timings["bulk"]
    print(f"\nForwarding a stored backlog of {count} events and {count} sessions to the emulator (both lanes at once)")
    print("  the backlog, stored through the relay's application in this process (no HTTP server, one thread):")
    for name, timing, unit in (("event requests", event, "event"), (f"bulk requests of {BULK_SIZE} sessions", bulk, "request")):
        per = timing["seconds"] / max(1, timing["requests"])
        share = timing["fsync_seconds"] / timing["seconds"] if timing["seconds"] else 0
        each = timing["fsync_seconds"] / max(1, timing["fsyncs"])
        print(
            f"    {timing['requests']} {name}: {per * 1e6:.0f} us per {unit}, {timing['stored']} stored;"
            f" {timing['fsyncs']} fsyncs took {share:.0%} of it ({each * 1e6:.0f} us each)"
        )
    print(f"  {'':44}{'ready s':>8}{'first s':>8}{'events/s':>10}{'sessions/s':>11}  upstream requests; CPU s relay/emulator")
    for kind, row in rows.items():
        def rate(done):
            if done is None or row["started"] is None:
                return "  not all"
            return f"{count / max(done - row['started'], POLL):.0f}"

        first = f"{row['first']:.2f}" if row["first"] is not None else "never"
        cpu = "/".join("n/a" if value is None else f"{value:.1f}" for value in row["cpu"])
        missing = ""
        if row["events"] < count or row["sessions"] < count:
            missing = f"  (arrived: {row['events']} events, {row['sessions']} sessions)"
        print(
            f"  {RelayProcess.LABELS[kind]:44}{row['ready']:>8.2f}{first:>8}{rate(row['events_done']):>10}"
            f"{rate(row['sessions_done']):>11}  {row['requests']}; {cpu}{missing}"
        )
    print("  (rates from the first request the emulator saw to the last of each kind; 'ready' is when the server")
    print("  said it serves, 'first' when the first forwarded request arrived, both from the launch)")


# -- the emulator, with the waits this benchmark needs --------------------------------------------


def counting_emulator(support, root):
    class Emulator(support.Emulator):
        def wait_for(self, counter, count, timeout):
            deadline = time.perf_counter() + timeout
            while self.counters()[counter] < count:
                if time.perf_counter() > deadline:
                    return False
                time.sleep(POLL)
            return True

    return Emulator(root)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds, as the test suite does")
    parser.add_argument("--seconds", type=float, help="measured seconds per accepting row (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds of load before each window (default 2)")
    parser.add_argument("--repeats", type=int, help="rounds of the accepting rows, taking turns (default 2)")
    parser.add_argument("--clients", type=int, default=2, help="load processes (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="kept-alive connections per load process (default 8)")
    parser.add_argument("--backlog", type=int, help="events, and sessions, in the backlog to forward (default 5000)")
    parser.add_argument("--spool-parent", metavar="DIR", help="where the spools go (default: the temporary folder)")
    parser.add_argument("--client", nargs=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.client:
        url, route, connections, measure_from, measure_until = arguments.client
        client(url, route, int(connections), float(measure_from), float(measure_until))
        return 0

    quick = arguments.quick
    arguments.seconds = arguments.seconds or (1.0 if quick else 10.0)
    arguments.warmup = arguments.warmup if arguments.warmup is not None else (0.5 if quick else 2.0)
    arguments.repeats = arguments.repeats or (1 if quick else 2)
    arguments.backlog = arguments.backlog or (200 if quick else 5000)
    arguments.drain_timeout = 20.0 if quick else 180.0

    import _support

    _support.header("The relay on loopback: requests accepted per second, and forwarding of a backlog")
    print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}"
          " (a shared, noisy machine: compare rows of one run, not runs)")
    kinds = [kind for kind in RelayProcess.LABELS if available(kind)]
    for kind in set(RelayProcess.LABELS) - set(kinds):
        print(f"({kind} is not installed: its rows are left out)")
    if not kinds:
        sys.exit("neither waitress nor gunicorn is installed: pip install 'playhooks[relay]' gunicorn")
    folder = tempfile.mkdtemp(prefix="playhooks-bench-relay-", dir=arguments.spool_parent)
    print(f"spools in {folder} ({filesystem(folder)}); relay, emulator and load each in processes of their own")
    try:
        with counting_emulator(_support, _support.ROOT) as emulator:
            config = os.path.join(folder, "relay.toml")
            with open(config, "w") as file:
                file.write(CONFIG.format(url=emulator.url, key=INGEST_KEY))
            results = measure_accepting(emulator, kinds, folder, config, arguments)
            print_accepting(results, arguments)
            filled = os.path.join(folder, "backlog")
            timings = fill_backlog(config, filled, arguments.backlog)
            rows = {
                kind: forward_row(kind, emulator, folder, config, filled, arguments.backlog, arguments.drain_timeout)
                for kind in kinds
            }
            print_forwarding(timings, rows, arguments.backlog)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nload average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
