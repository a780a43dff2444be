"""How fast the emulator answers on loopback: request latency, and requests per second.

    python tests/benchmarks/bench_emulator.py                          # this checkout
    python tests/benchmarks/bench_emulator.py --compare /tmp/emu-old   # and another, side by side
    python tests/benchmarks/bench_emulator.py --quick                  # a smoke run, as the test suite does

Make the other checkout with ``git worktree add --detach /tmp/emu-old <commit>``.

Latency rows, in this process: each route through one kept-alive connection (how the client's
pool talks to it), a new connection per request, and the same application behind the standard
library's stock ``wsgiref`` server (HTTP/1.0, one connection per request).

Throughput rows: the emulator serves from a process of its own and a client process sends to it,
through one kept-alive connection or through eight at once (threads), with urllib3 as playhooks
does or with a bare socket that sends ready-made requests (which shows how far the server alone
would go). Each row gives requests per second, and the CPU time per request of the server and of
the client: whichever is the larger is the ceiling. With ``--compare``, the other checkout's
emulator is measured in the same run, row by row in turn, and the ratio printed.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import wsgiref.simple_server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PLAYCAMP = {"Authorization": "Bearer key:secret", "Content-Type": "application/json"}
PLAYFAB = {"X-SecretKey": "secret", "Content-Type": "application/json"}
EVENT = json.dumps({"CharacterId": "C", "PlayFabId": "P", "EventName": "coin_collected", "Body": {"n": 1}})
ROUTES = {
    "event": ("/Server/WriteCharacterEvent", PLAYFAB),
    "session": ("/v1/server/playtime/sessions", PLAYCAMP),
}
LATENCY = 0.02  # seconds, for the row that imitates a real network


def session(number, prefix="s"):
    return json.dumps(
        {
            "sessionId": f"{prefix}-{number}",
            "userId": "player",
            "durationSeconds": 60,
            "startedAt": "2024-01-15T10:30:00.000Z",
            "endedAt": "2024-01-15T10:31:00.000Z",
        }
    )


def body_for(route, number, prefix):
    return EVENT if route == "event" else session(number, prefix)


# -- latency, in this process ---------------------------------------------------------------------


def timed(requests, send):
    samples = []
    for number in range(requests):
        start = time.perf_counter()
        send(number)
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def latency_rows(base_url, requests):
    import urllib3

    host, port = base_url.replace("http://", "").split(":")
    results = {}
    with urllib3.HTTPConnectionPool(host, int(port), maxsize=1, retries=False) as pool:
        results["session, kept-alive connection"] = timed(
            requests, lambda n: pool.request("POST", ROUTES["session"][0], body=session(n), headers=PLAYCAMP)
        )
        results["event, kept-alive connection"] = timed(
            requests, lambda n: pool.request("POST", ROUTES["event"][0], body=EVENT, headers=PLAYFAB)
        )
    results["event, new connection each"] = timed(
        requests,
        lambda n: urllib3.request("POST", base_url + ROUTES["event"][0], body=EVENT, headers=dict(PLAYFAB, Connection="close")),
    )
    return results


def print_latency(requests):
    from playhooks.emulator import Emulator

    print(f"{'':52} {'median':>8} {'p99':>8}   (milliseconds, {requests} requests per row)")
    with Emulator() as emulator:
        for name, (median, p99) in latency_rows(emulator.url, requests).items():
            print(f"{'playhooks server: ' + name:52} {median * 1000:8.3f} {p99 * 1000:8.3f}")

    import urllib3

    stock = wsgiref.simple_server.make_server("127.0.0.1", 0, Emulator())
    stock.RequestHandlerClass.log_message = lambda *args: None
    threading.Thread(target=stock.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stock.server_port}"
    median, p99 = timed(
        requests, lambda n: urllib3.request("POST", url + ROUTES["event"][0], body=EVENT, headers=PLAYFAB)
    )
    print(f"{'stock wsgiref server: event, new connection':52} {median * 1000:8.3f} {p99 * 1000:8.3f}")
    stock.shutdown()
    stock.server_close()


# -- throughput, across processes -----------------------------------------------------------------


def serve(root, latency):
    """The server process: the emulator of ``root``; says its URL, then its CPU seconds at each line read."""
    sys.path.insert(0, root)
    from playhooks.emulator import Emulator

    import playhooks

    if not playhooks.__file__.startswith(root):
        raise SystemExit(f"imported {playhooks.__file__}, not the playhooks of {root}")
    options = {"latency": latency} if latency else {}
    with Emulator(**options) as emulator:
        print(emulator.url, flush=True)
        for _ in sys.stdin:
            print(time.process_time(), flush=True)


def raw_request(route, number, prefix):
    path, headers = ROUTES[route]
    body = body_for(route, number, prefix).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def raw_exchange(sock, data, pending):
    """Send one request and read its answer whole; what was read past it is returned for the next."""
    sock.sendall(data)
    while True:
        head, separator, rest = pending.partition(b"\r\n\r\n")
        if separator:
            start = head.lower().find(b"content-length:") + 15
            end = (head + b"\r\n").index(b"\r\n", start)
            length = int(head[start:end])
            if len(rest) >= length:
                if head[9:12] not in (b"200", b"201"):
                    raise RuntimeError(f"answered {head[:40]!r}")
                return rest[length:]
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        pending += chunk


def client(url, route, connections, requests, kind):
    """The client process: ``requests`` requests over ``connections`` connections; prints rate and CPU."""
    host, port = url.replace("http://", "").split(":")
    prefix = f"s{os.getpid()}"
    per_connection = requests // connections
    ready = threading.Barrier(connections + 1)
    errors = []

    def with_urllib3(pool, first):
        ready.wait()
        path, headers = ROUTES[route]
        for number in range(first, first + per_connection):
            response = pool.request("POST", path, body=body_for(route, number, prefix), headers=headers)
            if response.status not in (200, 201):
                raise RuntimeError(f"answered {response.status}")

    def with_socket(_, first):
        data = [raw_request(route, number, prefix) for number in range(first, first + per_connection)]
        with socket.create_connection((host, int(port))) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ready.wait()
            pending = b""
            for request in data:
                pending = raw_exchange(sock, request, pending)

    def run(work, pool, first):
        try:
            work(pool, first)
        except Exception as error:  # reported below, once every thread is done
            errors.append(error)
            ready.abort()

    import urllib3

    with urllib3.HTTPConnectionPool(host, int(port), maxsize=connections, block=True, retries=False) as pool:
        work = with_urllib3 if kind == "urllib3" else with_socket
        threads = [threading.Thread(target=run, args=(work, pool, n * per_connection)) for n in range(connections)]
        for thread in threads:
            thread.start()
        ready.wait()
        started, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.join()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if errors:
        raise SystemExit(f"client failed: {errors[0]!r}")
    sent = per_connection * connections
    print(json.dumps({"rate": sent / elapsed, "cpu": cpu / sent}))


class Server:
    """An emulator of one checkout, in a process of its own."""

    def __init__(self, root, latency=0.0):
        command = [sys.executable, os.path.abspath(__file__), "--serve", root, "--latency", str(latency)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise SystemExit(f"the emulator of {root} did not start")

    def cpu(self):
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def measure(self, route, connections, requests, kind):
        before = self.cpu()
        command = [sys.executable, os.path.abspath(__file__), "--client", self.url, route, str(connections), str(requests), kind]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        measured = json.loads(result.stdout)
        sent = requests // connections * connections
        return measured["rate"], (self.cpu() - before) / sent, measured["cpu"]

    def stop(self):
        self.process.stdin.close()
        self.process.wait(10)


def print_throughput(roots, requests, rounds):
    rows = [
        (route, connections, kind)
        for route in ("event", "session")
        for connections in (1, 8)
        for kind in ("urllib3", "socket")
    ]
    servers = [Server(root) for root in roots]
    print(f"\nRequests per second, median of {rounds} round(s) of {requests} requests; in brackets, CPU")
    print("microseconds per request in the server / in the client")
    for number, root in enumerate(roots):
        print(f"  [{'AB'[number]}] {root}")
    header = f"{'':44}" + "".join(f"{'[' + 'AB'[n] + ']':>20}" for n in range(len(roots)))
    print(header + ("   A / B" if len(roots) == 2 else ""))
    try:
        for route, connections, kind in rows:
            samples = [[] for _ in roots]
            for _ in range(rounds):
                for server, kept in zip(servers, samples):  # in turn, so that drift in the machine's load hits both
                    kept.append(server.measure(route, connections, requests, kind))
            medians = [tuple(statistics.median(sample[i] for sample in kept) for i in range(3)) for kept in samples]
            name = f"{route}, {connections} connection{'s' if connections > 1 else ''}, {kind}"
            cells = "".join(f"{rate:>8,.0f} ({server * 1e6:3.0f}/{client * 1e6:3.0f})" for rate, server, client in medians)
            ratio = f"   {medians[0][0] / medians[1][0]:.2f}x" if len(roots) == 2 else ""
            print(f"{name:44}{cells}{ratio}", flush=True)
    finally:
        for server in servers:
            server.stop()

    server = Server(roots[0], latency=LATENCY)
    try:
        rate, _, _ = server.measure("event", 8, min(requests, 800), "urllib3")
    finally:
        server.stop()
    ideal = 8 / LATENCY
    print(f"\n[A] with --latency {LATENCY}: event, 8 connections, urllib3: {rate:,.0f} requests/s (at most {ideal:,.0f})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few requests per row, one round")
    parser.add_argument("--compare", metavar="CHECKOUT", help="another checkout whose emulator to measure alongside")
    parser.add_argument("--requests", type=int, help="requests per throughput row (default 3,000)")
    parser.add_argument("--rounds", type=int, help="rounds per throughput row (default 3)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve:
        serve(arguments.serve, arguments.latency)
        return 0
    if arguments.client:
        url, route, connections, requests, kind = arguments.client
        client(url, route, int(connections), int(requests), kind)
        return 0

    sys.path.insert(0, ROOT)
    import playhooks

    print(f"Python {sys.version.split()[0]}, loopback; playhooks from {os.path.dirname(playhooks.__file__)}\n")
    print_latency(50 if arguments.quick else 2000)
    roots = [ROOT] + ([os.path.abspath(arguments.compare)] if arguments.compare else [])
    requests = arguments.requests or (80 if arguments.quick else 3000)
    rounds = arguments.rounds or (1 if arguments.quick else 3)
    print_throughput(roots, requests, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
