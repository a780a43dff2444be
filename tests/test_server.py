"""The HTTP server over raw sockets on loopback: framing, limits, deadlines, load, failing applications, writes."""

import json
import os
import select
import selectors
import socket
import threading
import time

import pytest

from playhooks import _server
from playhooks._server import ServerThread
from playhooks.emulator import Emulator

SESSIONS = "/v1/server/playtime/sessions"
CLOSE = b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"  # ends a kept-alive exchange


class App:
    """A WSGI application for these tests: it notes each path and answers as the path says."""

    def __init__(self):
        self.paths = []
        self.release = threading.Event()  # lets requests to /hold go on
        self.holding = threading.Semaphore(0)  # released as each /hold request arrives
        self.busy = self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        self.paths.append(path)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if path == "/raise":
            raise RuntimeError("a bug in the application")
        if path == "/raise-midway":
            return self._raise_midway(start_response)
        if path == "/no-length":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"an answer ", b"in two parts"]
        if path == "/bad-header":
            start_response("200 OK", [("X-Note", "caf\u20ac")])
            return [b""]
        if path == "/hold":
            self._hold()
        if path == "/environ":
            answer = json.dumps(sorted(environ)).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
            return [answer]
        answer = json.dumps({"path": path, "body": len(body), "note": environ.get("HTTP_X_NOTE")}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
        return [answer]

    def _raise_midway(self, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        yield b"the first part"
        raise RuntimeError("a bug after the answer began")

    def _hold(self):
        with self._lock:
            self.busy += 1
            self.peak = max(self.peak, self.busy)
        self.holding.release()
        self.release.wait(10)
        with self._lock:
            self.busy -= 1


@pytest.fixture
def app():
    application = App()
    yield application
    application.release.set()


@pytest.fixture
def serve(app):
    """Start a server for ``app`` with the given settings; every one is stopped after the test."""
    servers = []

    def serve(**settings):
        servers.append(ServerThread(app, **settings).start())
        return servers[-1]

    yield serve
    for server in servers:
        server.stop()


@pytest.fixture
def server(serve):
    return serve()


def connect(server, timeout=5.0):
    return socket.create_connection(server.server.server_address[:2], timeout=timeout)


def ask(server, data, timeout=5.0):
    """Send raw bytes, read until the server closes, and parse the answers: [(status, headers, body)]."""
    with connect(server, timeout) as sock:
        sock.sendall(data)
        return parse(read_to_end(sock))


def read_to_end(sock):
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            raise AssertionError(f"the server neither closed nor finished answering: {b''.join(chunks)[:300]!r}")
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_one(sock):
    """Read exactly one answer from a connection that stays open."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
        _, separator, body = data.partition(b"\r\n\r\n")
        if separator and len(body) >= int(parse(data)[0][1]["content-length"]):
            return data


def parse(data):
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", len(rest)))
        answers.append((int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]
    return answers


def request(path="/", body=b"", headers=(), method="POST", version="HTTP/1.1"):
    lines = [f"{method} {path} {version}", "Host: x", *headers]
    if body and not any(header.lower().startswith(("content-length", "transfer-encoding")) for header in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture
def file_descriptors():
    """Room for 1,000 client sockets and the server's 1,000 in this one process (often 1,024 by default)."""
    resource = pytest.importorskip("resource")  # not on Windows, whose select() takes 512 sockets anyway
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2500
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, and the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class TestBurst:
    def test_a_thousand_clients_at_once_are_all_answered(self, file_descriptors):
        """1,000 clients connect together, each posting one session: every one is answered 201."""
        with Emulator() as emulator:
            statuses = burst(emulator.url, [session_request(number) for number in range(1000)], seconds=10)

        assert {201: 1000} == {status: statuses.count(status) for status in set(statuses)}
        assert 1000 == len(emulator.sessions)


def session_request(number):
    body = json.dumps(
        {
            "sessionId": f"s-{number}",
            "userId": "player-1",
            "durationSeconds": 60,
            "startedAt": "2024-01-15T10:30:00.000Z",
            "endedAt": "2024-01-15T10:31:00.000Z",
        }
    ).encode()
    return request(SESSIONS, body, ["Authorization: Bearer key-1:secret-1", "Connection: close"])


def burst(url, requests, seconds):
    """Open one non-blocking connection per request at once; each answer's status, or None if none came."""
    selector = selectors.DefaultSelector()
    host, port = url.replace("http://", "").split(":")
    address = (host, int(port))
    exchanges = []
    for data in requests:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(address)
        exchange = {"sock": sock, "to_send": data, "received": b"", "done": False}
        exchanges.append(exchange)
        selector.register(sock, selectors.EVENT_WRITE, exchange)
    deadline = time.monotonic() + seconds
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            step(selector, key.data)
    for exchange in exchanges:
        exchange["sock"].close()
    return [parse(e["received"])[0][0] if e["done"] and e["received"] else None for e in exchanges]


def step(selector, exchange):
    sock = exchange["sock"]
    try:
        if exchange["to_send"]:
            exchange["to_send"] = exchange["to_send"][sock.send(exchange["to_send"]) :]
            if not exchange["to_send"]:
                selector.modify(sock, selectors.EVENT_READ, exchange)
            return
        chunk = sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        chunk = b""
    exchange["received"] += chunk
    if not chunk:
        exchange["done"] = True
        selector.unregister(sock)


class TestFraming:
    @pytest.mark.parametrize(
        "headers",
        [
            ["Content-Length: 5", "Content-Length: 5"],
            ["Content-Length: 0", "Content-Length: 5"],
            ["Content-Length: -5"],
            ["Content-Length: five"],
            ["Content-Length: 5, 5"],
            ["Content-Length: +5"],
            ["Transfer-Encoding: "],
            ["Transfer-Encoding: chunked, gzip"],
            ["Transfer-Encoding: chunked, chunked"],
            ["Transfer-Encoding: chunked;q=1"],
            ["Transfer-Encoding: chunked", "Content-Length: 5"],
            ["Content-Length : 5"],
            ["Content-Length: 0", " folded-onto-the-line-above"],
            ["no colon here"],
            ["X-Note: a\x00b"],
        ],
        ids=[
            "duplicate-content-length",
            "conflicting-content-lengths",
            "negative-content-length",
            "non-numeric-content-length",
            "content-length-list",
            "signed-content-length",
            "empty-transfer-encoding",
            "chunked-not-last",
            "chunked-twice",
            "transfer-coding-with-parameter",
            "transfer-encoding-and-content-length",
            "space-before-colon",
            "folded-header",
            "header-without-colon",
            "control-character-in-a-value",
        ],
    )
    def test_doubtful_framing_is_400_and_nothing_after_it_is_read(self, app, server, headers):
        """Where the body's end is in doubt, the answer is 400 and the connection closes unread."""
        smuggled = request("/smuggled", method="GET")
        answers = ask(server, request("/", b"hello", headers) + smuggled)

        assert [400] == [status for status, _, _ in answers]
        assert ("close", "application/json") == (answers[0][1]["connection"], answers[0][1]["content-type"])
        assert "/smuggled" not in app.paths

    def test_chunked_transfer_encoding_is_not_implemented(self, app, server):
        """A well-formed chunked body is valid HTTP this server does not decode: 501, then close."""
        body = b"5\r\nhello\r\n0\r\n\r\n"
        answers = ask(server, request("/", body, ["Transfer-Encoding: chunked"]) + request("/smuggled", method="GET"))

        assert [(501, "close")] == [(status, headers["connection"]) for status, headers, _ in answers]
        assert [] == app.paths

    def test_a_transfer_encoding_from_an_http_1_0_client_is_400(self, app, server):
        """HTTP/1.0 has no Transfer-Encoding: its framing cannot be trusted."""
        answers = ask(server, request("/", b"5\r\nhello\r\n0\r\n\r\n", ["Transfer-Encoding: chunked"], version="HTTP/1.0"))

        assert [400] == [status for status, _, _ in answers]

    def test_an_absurd_content_length_is_413_without_reading(self, app, server):
        """A length past the limit (here 5,000 digits long) is refused before any body is read."""
        answers = ask(server, request("/", headers=["Content-Length: " + "9" * 5000]))

        assert [(413, "close")] == [(status, headers["connection"]) for status, headers, _ in answers]
        assert [] == app.paths

    def test_a_body_cut_short_never_reaches_the_application(self, app, server):
        """A client that promises 100 bytes, sends 10 and closes is not answered, nor its stub handled."""
        with connect(server) as sock:
            sock.sendall(request("/", b"0123456789", ["Content-Length: 100"]))
            sock.shutdown(socket.SHUT_WR)
            answer = read_to_end(sock)

        assert (b"", []) == (answer, app.paths)

    def test_a_head_answer_has_no_body(self, server):
        """The body an application gives a HEAD is not sent: it would be taken for the next answer."""
        with connect(server) as sock:
            sock.sendall(request("/", method="HEAD", headers=["Connection: close"]))
            answer = read_to_end(sock)

        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n")

    def test_an_answer_without_a_length_ends_with_the_connection(self, server):
        """An application that gives no Content-Length has its answer end where the connection closes."""
        with connect(server, timeout=3) as sock:
            sock.sendall(request("/no-length", method="GET"))
            answer = read_to_end(sock)

        assert b"\r\nConnection: close\r\n" in answer and answer.endswith(b"\r\n\r\nan answer in two parts")

    def test_a_client_that_expects_100_continue_is_told_to_go_on(self, server):
        """A client that waits for 100 Continue before its body (as curl does with large ones) gets it."""
        head, _, body = request("/", b"hello", ["Expect: 100-continue", "Connection: close"]).partition(b"\r\n\r\n")
        with connect(server) as sock:
            sock.sendall(head + b"\r\n\r\n")
            interim = sock.recv(65536)
            sock.sendall(body)
            [(status, _, answer)] = parse(read_to_end(sock))

        assert (b"HTTP/1.1 100 Continue\r\n\r\n", 200, 5) == (interim, status, json.loads(answer)["body"])

    @pytest.mark.parametrize("line, status", [(b"GET / HTTP/2.0", 505), (b"GET /", 400), (b"GET  / HTTP/1.1", 400)], ids=["http-2", "http-0.9", "two-spaces"])
    def test_only_http_1_request_lines_are_served(self, app, server, line, status):
        """HTTP/1.0 and 1.1 are served; another version is a 505 and a garbled line a 400."""
        answers = ask(server, line + b"\r\nHost: x\r\n\r\n")

        assert ([status], []) == ([status for status, _, _ in answers], app.paths)

    def test_a_header_value_is_read_as_latin_1(self, server):
        """Bytes past ASCII in a value (UTF-8 here) reach the application as PEP 3333 says: latin-1."""
        [(status, _, body)] = ask(server, request("/", headers=["Connection: close"]).replace(b"Host", "X-Note: café\r\nHost".encode()))

        assert (200, "cafÃ©") == (status, json.loads(body)["note"])

    def test_a_request_target_must_be_ascii(self, app, server):
        """A raw byte past ASCII in the path is a 400: clients percent-encode."""
        answers = ask(server, "GET /caf\u00e9 HTTP/1.1\r\nHost: x\r\n\r\n".encode("utf-8"))

        assert ([400], []) == ([status for status, _, _ in answers], app.paths)

    def test_a_kept_alive_body_on_a_get_is_read_and_the_next_request_served(self, app, server):
        """A GET may carry a body: it is read (and ignored by the application), never parsed as a request."""
        answers = ask(server, request("/first", b"GET /smuggled HTTP/1.1\r\n\r\n", method="GET") + CLOSE)

        assert ([200, 200], ["/first", "/after"]) == ([status for status, _, _ in answers], app.paths)


class TestLimits:
    def test_an_over_long_request_line_is_414(self, app, server):
        """A request line over 8 KiB is answered 414, and the connection closed."""
        answers = ask(server, request("/" + "a" * 9000, method="GET") + CLOSE)

        assert ([(414, "close")], []) == ([(status, headers["connection"]) for status, headers, _ in answers], app.paths)

    def test_an_over_long_header_is_431(self, app, server):
        """One header line over 8 KiB is answered 431."""
        answers = ask(server, request("/", headers=["X-Note: " + "a" * 9000]) + CLOSE)

        assert ([431], []) == ([status for status, _, _ in answers], app.paths)

    def test_an_over_large_head_is_431(self, app, server):
        """Headers of 80 KiB in all, each within its own limit, are answered 431."""
        answers = ask(server, request("/", headers=[f"X-Note-{n}: " + "a" * 4000 for n in range(20)]) + CLOSE)

        assert ([431], []) == ([status for status, _, _ in answers], app.paths)

    def test_too_many_headers_is_431(self, app, server):
        """More than 100 headers are answered 431."""
        answers = ask(server, request("/", headers=[f"X-Note-{n}: a" for n in range(101)]) + CLOSE)

        assert ([431], []) == ([status for status, _, _ in answers], app.paths)


def trickle(sock, data, interval, give_up):
    """Send ``data`` a byte at a time, ``interval`` apart: the seconds until the server hung up, or None."""
    started = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - started
        readable, _, _ = select.select([sock], [], [], interval)  # the pause between bytes, cut short by a hang-up
        if readable:
            return time.monotonic() - started if sock.recv(1) == b"" else None
        if time.monotonic() - started > give_up:
            return None
    return None


class TestDeadlines:
    def test_a_trickled_head_is_cut_off_at_the_request_deadline(self, app, serve):
        """A client sending its headers a byte every 0.1 s is cut off once the request's 0.5 s are up."""
        server = serve(request_timeout=0.5)
        with connect(server) as sock:
            hung_up_after = trickle(sock, request("/", headers=["X-Note: " + "a" * 100]), interval=0.1, give_up=3)

        assert hung_up_after is not None and 0.4 <= hung_up_after < 2
        assert [] == app.paths

    def test_a_trickled_body_is_cut_off_at_the_request_deadline(self, app, serve):
        """The same deadline covers the body: a head sent at once buys no more time for it."""
        server = serve(request_timeout=0.5)
        head, _, body = request("/", b"b" * 100).partition(b"\r\n\r\n")
        with connect(server) as sock:
            sock.sendall(head + b"\r\n\r\n")
            hung_up_after = trickle(sock, body, interval=0.1, give_up=3)

        assert hung_up_after is not None and 0.3 <= hung_up_after < 2
        assert [] == app.paths

    def test_a_kept_alive_connection_may_idle_past_the_request_deadline(self, app, serve):
        """The request deadline starts with a request's first byte: idling between requests is the idle timeout's."""
        server = serve(request_timeout=0.2, idle_timeout=5)
        with connect(server) as sock:
            sock.sendall(request("/first", method="GET"))
            first = read_one(sock)
            hung_up, _, _ = select.select([sock], [], [], 0.5)  # idle for more than the request deadline
            sock.sendall(CLOSE)
            answers = parse(first + read_to_end(sock))

        assert ([], [200, 200]) == (hung_up, [status for status, _, _ in answers])

    def test_an_idle_connection_is_closed_after_the_idle_timeout(self, serve):
        """A connection that sends nothing is closed once the idle timeout is up."""
        server = serve(idle_timeout=0.3)
        started = time.monotonic()
        with connect(server) as sock:
            answer = read_to_end(sock)

        assert b"" == answer
        assert 0.25 <= time.monotonic() - started < 3


class TestConnectionCap:
    def test_past_the_cap_new_connections_wait_for_a_free_one(self, app, serve):
        """With two connections held, five more are not served until those end, and never in parallel past two."""
        server = serve(max_connections=2)
        threads_before = threading.active_count()
        holders = [connect(server) for _ in range(2)]
        for sock in holders:
            sock.sendall(request("/hold", method="GET", headers=["Connection: close"]))
        assert all(app.holding.acquire(timeout=5) for _ in holders)

        waiting = [connect(server) for _ in range(5)]
        for sock in waiting:
            sock.sendall(request("/hold", method="GET", headers=["Connection: close"]))
        answered_early, _, _ = select.select(waiting, [], [], 0.3)
        threads_while_full = threading.active_count()
        app.release.set()
        statuses = [parse(read_to_end(sock))[0][0] for sock in holders + waiting]
        for sock in holders + waiting:
            sock.close()

        assert ([], [200] * 7, 2) == (answered_early, statuses, app.peak)
        assert threads_while_full <= threads_before + 2

    def test_a_full_server_still_stops_promptly(self, app, serve):
        """Stopping does not wait for a connection slot to free up."""
        server = serve(max_connections=1)
        holder = connect(server)
        holder.sendall(request("/hold", method="GET"))
        assert app.holding.acquire(timeout=5)
        waiting = connect(server)

        started = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - started
        holder.close()
        waiting.close()

        assert stopped_in < 2


class TestApplicationFailures:
    def test_an_exception_is_a_500_with_a_json_body(self, server):
        """An application's bug is a 500 whose body is JSON, and the connection is closed."""
        [(status, headers, body)] = ask(server, request("/raise", method="GET") + CLOSE)

        assert (500, "application/json", "close") == (status, headers["content-type"], headers["connection"])
        assert "error" in json.loads(body)

    def test_a_failure_after_the_answer_began_closes_the_connection(self, server):
        """Half an answer is never left hanging on a kept-alive connection: the client sees it cut short."""
        with connect(server, timeout=3) as sock:
            sock.sendall(request("/raise-midway", method="GET"))
            answer = read_to_end(sock)

        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"the first part")

    def test_a_header_that_cannot_be_sent_is_a_500(self, server):
        """A header value outside latin-1 is the application's bug: a 500, not half a head and a hang."""
        [(status, headers, _)] = ask(server, request("/bad-header", method="GET") + CLOSE)

        assert (500, "application/json") == (status, headers["content-type"])


class CountingSocket:
    """A connection's socket that notes each ``sendall`` and the Nagle setting the server left it with."""

    def __init__(self, sock, writes):
        self._sock = sock
        self._writes = writes

    def sendall(self, data):
        self._writes.append((bytes(data), self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        return self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


@pytest.fixture
def writes(monkeypatch):
    """Every write the server makes to a connection: (the bytes, whether TCP_NODELAY was on)."""
    noted = []
    setup = _server._RequestHandler.setup

    def counting_setup(handler):
        setup(handler)
        handler.connection = CountingSocket(handler.connection, noted)

    monkeypatch.setattr(_server._RequestHandler, "setup", counting_setup)
    return noted


class TestWrites:
    def test_each_answer_is_one_write_with_nagle_off(self, writes):
        """Status line, headers and body of each answer leave in one write, on a TCP_NODELAY socket."""
        with Emulator() as emulator:
            host, port = emulator.url.replace("http://", "").split(":")
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                for number in range(3):
                    sock.sendall(session_request(number).replace(b"Connection: close", b"X-Note: kept-alive"))
                    [(status, _, body)] = parse(read_one(sock))
                    assert (201, f"s-{number}") == (status, json.loads(body)["data"]["sessionId"])

        assert 3 == len(writes)
        assert all(data.startswith(b"HTTP/1.1 201 ") and data.endswith(b"}") and nodelay for data, nodelay in writes)

    def test_a_refusal_is_one_write(self, server, writes):
        """The server's own answers (here a 400) are one write too."""
        [(status, _, _)] = ask(server, b"GET  / HTTP/1.1\r\n\r\n")

        assert (400, 1) == (status, len(writes))

    def test_the_environ_holds_the_request_not_the_process_environment(self, server):
        """Variables of the server's process (PATH, or an HTTP_PROXY that would pass for a header) stay out."""
        [(_, _, body)] = ask(server, request("/environ", headers=["X-Note: a", "Connection: close"]))

        keys = json.loads(body)
        assert "HTTP_X_NOTE" in keys and "PATH_INFO" in keys
        assert [] == [key for key in keys if key in os.environ]
