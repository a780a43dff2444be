"""A loopback stand-in for the peers' ingestion APIs, run in a process of its own by the report.

    python tests/benchmarks/loopback_server.py --port 0            # answers every POST 200 at once
    python tests/benchmarks/loopback_server.py --port 0 --stall    # reads nothing, answers nothing

It prints ``http://127.0.0.1:PORT`` on its first line. Every POST, whatever its path, is answered
200 with ``{"code": 200, "status": 1, "error": null}``, which each peer reads as success: segment
and posthog look at the status only, mixpanel wants ``status`` 1, amplitude ``code`` 200. Nagle's
algorithm is off on every connection (an answer held back 40 ms for an ACK once made a peer look
slow). It counts the events it received by path, read from each peer's body format (segment's and
posthog's ``batch``, amplitude's ``events``, mixpanel's form field ``data``): ``GET /_counts``
returns them, ``POST /_reset`` clears them. With ``--stall`` it accepts connections and never
reads or answers: a service that hangs.
"""

import argparse
import http.server
import json
import socketserver
import sys
import threading
import urllib.parse
import zlib

ANSWER = json.dumps({"code": 200, "status": 1, "error": None}).encode()


def events_in(path, body):
    """How many events a peer's request body holds (0 when it cannot be read)."""
    try:
        if body[:2] == b"\x1f\x8b":
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if path.rstrip("/").endswith("/track"):  # mixpanel: data=<a JSON list>, form-encoded
            form = urllib.parse.parse_qs(body.decode("utf-8"))
            return len(json.loads(form["data"][0]))
        data = json.loads(body)
        for key in ("batch", "events"):
            if isinstance(data.get(key), list):
                return len(data[key])
        return 1
    except (ValueError, KeyError, TypeError, AttributeError, zlib.error):
        return 0


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.events = {}
        self.requests = {}

    def add(self, path, events):
        with self.lock:
            self.events[path] = self.events.get(path, 0) + events
            self.requests[path] = self.requests.get(path, 0) + 1

    def snapshot(self):
        with self.lock:
            return {"events": dict(self.events), "requests": dict(self.requests)}

    def reset(self):
        with self.lock:
            self.events.clear()
            self.requests.clear()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as the peers' pools expect
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _reply(self, body, status=200):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_counts":
            self._reply(json.dumps(self.server.counts.snapshot()).encode())
        else:
            self._reply(b"{}", 404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_reset":
            self.server.counts.reset()
        else:
            self.server.counts.add(path, events_in(path, body))
        self._reply(ANSWER)


class StallingHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.never.wait()  # hold the connection open, read nothing, answer nothing


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stall", action="store_true", help="accept connections, never answer")
    arguments = parser.parse_args(argv)
    server = Server(("127.0.0.1", arguments.port), StallingHandler if arguments.stall else Handler)
    server.counts = Counts()
    server.never = threading.Event()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
