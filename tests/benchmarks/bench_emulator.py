"""How long one request to the emulator takes on loopback.

    python tests/benchmarks/bench_emulator.py            # 2,000 requests per row
    python tests/benchmarks/bench_emulator.py --quick    # a smoke run, as the test suite does

Rows, all in one run: each route through one kept-alive connection (how the client's pool talks to
it), a new connection per request, and the same application behind the standard library's stock
``wsgiref`` server for comparison (HTTP/1.0, one connection per request).
"""

import argparse
import json
import sys
import threading
import time
import wsgiref.simple_server

import urllib3

from playhooks.emulator import Emulator

PLAYCAMP = {"Authorization": "Bearer key:secret", "Content-Type": "application/json"}
PLAYFAB = {"X-SecretKey": "secret", "Content-Type": "application/json"}
EVENT = json.dumps({"CharacterId": "C", "PlayFabId": "P", "EventName": "coin_collected", "Body": {"n": 1}})


def session(number):
    return json.dumps(
        {
            "sessionId": f"s-{number}",
            "userId": "player",
            "durationSeconds": 60,
            "startedAt": "2024-01-15T10:30:00.000Z",
            "endedAt": "2024-01-15T10:31:00.000Z",
        }
    )


def timed(requests, send):
    samples = []
    for number in range(requests):
        start = time.perf_counter()
        send(number)
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def rows(base_url, requests):
    host, port = base_url.replace("http://", "").split(":")
    results = {}
    with urllib3.HTTPConnectionPool(host, int(port), maxsize=1, retries=False) as pool:
        results["session, kept-alive connection"] = timed(
            requests, lambda n: pool.request("POST", "/v1/server/playtime/sessions", body=session(n), headers=PLAYCAMP)
        )
        results["event, kept-alive connection"] = timed(
            requests, lambda n: pool.request("POST", "/Server/WriteCharacterEvent", body=EVENT, headers=PLAYFAB)
        )
    results["event, new connection each"] = timed(
        requests,
        lambda n: urllib3.request(
            "POST", base_url + "/Server/WriteCharacterEvent", body=EVENT, headers=dict(PLAYFAB, Connection="close")
        ),
    )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    requests = 50 if parser.parse_args(argv).quick else 2000

    print(f"Python {sys.version.split()[0]}, {requests} requests per row, loopback\n")
    print(f"{'':52} {'median':>8} {'p99':>8}   (milliseconds)")
    with Emulator() as emulator:
        for name, (median, p99) in rows(emulator.url, requests).items():
            print(f"{'playhooks server: ' + name:52} {median * 1000:8.3f} {p99 * 1000:8.3f}")

    stock = wsgiref.simple_server.make_server("127.0.0.1", 0, Emulator())
    stock.RequestHandlerClass.log_message = lambda *args: None
    threading.Thread(target=stock.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stock.server_port}"
    median, p99 = timed(
        requests,
        lambda n: urllib3.request("POST", url + "/Server/WriteCharacterEvent", body=EVENT, headers=PLAYFAB),
    )
    print(f"{'stock wsgiref server: event, new connection':52} {median * 1000:8.3f} {p99 * 1000:8.3f}")
    stock.shutdown()
    stock.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
