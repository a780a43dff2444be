"""A small threaded HTTP/1.1 server for WSGI applications: the emulator's, and the relay's.

The standard library's ``wsgiref`` server answers HTTP/1.0, one request per connection, with
Nagle's algorithm on; a client then pays a TCP handshake per request and, on loopback, can stall
40 ms on a delayed ACK. This one keeps connections alive, sets ``TCP_NODELAY``, answers each
connection on its own thread, and lets an application cut a connection off without an answer
(``raise DropConnection``), which tests need to script network faults.

It is a server people run, so no client can confuse it or wear it out:

- Framing is strict. A body comes with one ``Content-Length`` of digits. Whatever leaves doubt
  where a request ends (a duplicate, negative or non-numeric length, a malformed
  ``Transfer-Encoding`` or one next to a length, whitespace before a header's colon, a folded or
  garbled header line) is a 400. A well-formed chunked ``Transfer-Encoding`` is a 501: valid HTTP
  this server does not implement (RFC 9112, section 6.1); send a ``Content-Length``. After any
  answer the server gives itself, the connection is closed, so what follows is never read as a
  next request.
- Sizes: a request line over 8 KiB is a 414; a header line over 8 KiB, more than 100 headers or
  64 KiB of them is a 431; a body over ``max_body_bytes`` is a 413, answered without reading it.
  The server reads the whole body before the application runs, so an application never waits on
  a slow client and never leaves part of a body to be taken for the next request.
- Time: a request's head and body must arrive within ``request_timeout`` seconds in all, however
  steadily a client trickles them; between requests a kept-alive connection may idle for
  ``idle_timeout`` seconds.
- Load: at most ``max_connections`` connections are served at once, each on its own thread. Past
  that, new connections wait in the listen backlog (``request_queue_size``) until one ends, rather
  than being refused: a burst of clients is answered late, not turned away.
- An application that fails answers 500 with a JSON body (or, if its answer had begun, has its
  connection closed), and the failure is logged. The server's own error answers are JSON too:
  ``{"error": "..."}``.
"""

import io
import json
import logging
import re
import socket
import sys
import threading
import time
from http.client import HTTPMessage
from socketserver import ThreadingMixIn
from typing import Any, Callable, List, NoReturn, Optional, Set
from wsgiref.handlers import SimpleHandler
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.util import is_hop_by_hop

log = logging.getLogger("playhooks.server")

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_LINE = 8 * 1024
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(%s) ([!-~]+) HTTP/([0-9]\.[0-9])\r?\n" % _TOKEN)
_HEADER_LINE = re.compile(rb"(%s):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*\r?\n" % _TOKEN)
_HEADER_NAME = re.compile(_TOKEN.decode())
_HEADER_VALUE = re.compile("[\t\x20-\x7e\x80-\xff]*")  # what latin-1 can carry, control characters aside
_DIGITS = re.compile("[0-9]+")


class DropConnection(Exception):
    """Raised by an application to close the connection without sending any answer."""


class _Refusal(Exception):
    """A request the server answers itself, without the application, before closing the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _DeadlineReader(io.RawIOBase):
    """A socket's input, read only until ``deadline``: a request trickled in byte by byte still ends.

    With no deadline (between requests), each read waits at most the idle timeout, as writes do.
    """

    def __init__(self, sock: socket.socket, idle_timeout: float) -> None:
        self._sock = sock
        self._idle_timeout = idle_timeout
        self.deadline: Optional[float] = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("the request did not arrive in time")
            self._sock.settimeout(min(remaining, self._idle_timeout))
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._idle_timeout)


class _ResponseHandler(SimpleHandler):
    http_version = "1.1"
    server_software = "playhooks"
    error_body = json.dumps({"error": "the server failed to answer this request"}).encode()
    error_headers = [("Content-Type", "application/json")]
    dropped = False

    def start_response(self, status: str, headers: List[Any], exc_info: Any = None) -> Callable[..., Any]:
        # Checked before anything is sent, so that a bad header is a clean 500, not half a head.
        if not _HEADER_VALUE.fullmatch(status) or not all(can_send_header(name, value) for name, value in headers):
            names = [name for name, _ in headers]  # values may be secrets: they stay out of the log
            raise ValueError(f"the application's status or headers cannot be sent: {status!r}, {names!r}")
        return super().start_response(status, headers, exc_info)

    def write(self, data: bytes) -> None:
        # An answer to HEAD is its head alone: a body would be read as the start of the next answer.
        super().write(b"" if self.environ["REQUEST_METHOD"] == "HEAD" else data)

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        if "Content-Length" not in self.headers:  # the answer ends where the connection does
            self.request_handler.close_connection = True
        if self.request_handler.close_connection:  # the client asked, spoke HTTP/1.0, or the app failed
            self.headers["Connection"] = "close"

    def handle_error(self) -> None:
        # Whatever was sent of this answer, the connection cannot be trusted to go on.
        self.request_handler.close_connection = True
        if isinstance(sys.exc_info()[1], DropConnection):
            self.dropped = True
            return
        super().handle_error()  # logs, then answers 500 unless the answer had begun

    def log_exception(self, exc_info: Any) -> None:
        log.error("the application failed on %s", self.environ.get("PATH_INFO"), exc_info=exc_info)


def can_send_header(name: Any, value: Any) -> bool:
    """Whether a header is one an application may answer with: latin-1 text, no line breaks, not hop-by-hop."""
    return (
        isinstance(name, str)
        and isinstance(value, str)
        and bool(_HEADER_NAME.fullmatch(name))
        and not is_hop_by_hop(name)
        and bool(_HEADER_VALUE.fullmatch(value))
    )


class _RequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # persistent connections; every answer carries Content-Length
    server: "ThreadingWSGIServer"

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _DeadlineReader(self.connection, self.server.idle_timeout)
        self.rfile.close()  # replaced by one that keeps to the request's deadline
        self.rfile = io.BufferedReader(self._reader)

    def handle(self) -> None:
        self.close_connection = False
        while not self.close_connection and self._handle_one():
            pass

    def _handle_one(self) -> bool:
        """Read and answer one request; False once the connection is done with."""
        self.requestline, self.command, self.request_version = "", "", "HTTP/1.1"  # for the log
        self._reader.deadline = None
        try:
            if not self.rfile.peek(1):
                return False  # the client closed the connection between requests
            self._reader.deadline = time.monotonic() + self.server.request_timeout
            self._read_head()
            body = self._read_body()
        except _Refusal as refusal:
            self._refuse(refusal)
            return False
        except OSError:
            return False  # the client left, or took too long: there is no one to answer
        return self._run_application(body)

    def _read_head(self) -> None:
        line = self._read_line(MAX_REQUEST_LINE, _Refusal(414, "the request line is too long"))
        match = _REQUEST_LINE.fullmatch(line)
        if match is None:
            raise _Refusal(400, "malformed request line")
        self.raw_requestline, self.requestline = line, line.rstrip(b"\r\n").decode("ascii")
        self.command, self.path = match[1].decode("ascii"), match[2].decode("ascii")
        self.request_version = "HTTP/" + match[3].decode("ascii")
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Refusal(505, "only HTTP/1.0 and HTTP/1.1 are served")
        self.headers = self._read_headers()
        self.close_connection = self.request_version == "HTTP/1.0" or "close" in _tokens(self.headers, "Connection")

    def _read_headers(self) -> HTTPMessage:
        headers = HTTPMessage()
        size = 0
        while True:
            line = self._read_line(MAX_HEADER_LINE, _Refusal(431, "a header line is too long"))
            if line in (b"\r\n", b"\n"):
                return headers
            size += len(line)
            if size > MAX_HEAD or len(headers) >= MAX_HEADERS:
                raise _Refusal(431, "the headers are too many or too large")
            match = _HEADER_LINE.fullmatch(line)
            if match is None:
                raise _Refusal(400, "malformed header line")
            headers[match[1].decode("ascii")] = match[2].decode("latin-1")  # PEP 3333: header text is latin-1

    def _read_line(self, limit: int, too_long: _Refusal) -> bytes:
        line = self.rfile.readline(limit + 1)
        if len(line) > limit:
            raise too_long
        if not line.endswith(b"\n"):
            raise ConnectionResetError("the client closed the connection mid-request")
        return line

    def _read_body(self) -> bytes:
        length = self._body_length()
        if length and "100-continue" in _tokens(self.headers, "Expect") and self.request_version == "HTTP/1.1":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionResetError("the client closed the connection mid-body")
        return body

    def _body_length(self) -> int:
        """How many bytes of body follow the head, by the one framing this server takes."""
        if "Transfer-Encoding" in self.headers:
            self._refuse_transfer_encoding()
        lengths = self.headers.get_all("Content-Length", [])
        if len(lengths) > 1:
            raise _Refusal(400, "more than one Content-Length")
        if not lengths:
            return 0
        if not _DIGITS.fullmatch(lengths[0]):
            raise _Refusal(400, "Content-Length must be a number of bytes")
        significant = lengths[0].lstrip("0")  # a length of any size, without int() of thousands of digits
        if len(significant) > 18 or int(significant or "0") > self.server.max_body_bytes:
            raise _Refusal(413, f"the body is over {self.server.max_body_bytes} bytes")
        return int(significant or "0")

    def _refuse_transfer_encoding(self) -> NoReturn:
        codings = _tokens(self.headers, "Transfer-Encoding")
        well_formed = codings[-1:] == ["chunked"] and codings.count("chunked") == 1
        well_formed = well_formed and all(_HEADER_NAME.fullmatch(coding) for coding in codings)
        if not well_formed or "Content-Length" in self.headers or self.request_version == "HTTP/1.0":
            raise _Refusal(400, "malformed Transfer-Encoding")
        raise _Refusal(501, "Transfer-Encoding is not supported: send a Content-Length")

    def _refuse(self, refusal: _Refusal) -> None:
        self.close_connection = True
        body = json.dumps({"error": refusal.message}).encode()
        try:
            self.send_response(refusal.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client is gone: nothing to tell it

    def _run_application(self, body: bytes) -> bool:
        environ = self.get_environ()
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))  # the header's digits may carry leading zeros
        handler = _ResponseHandler(io.BytesIO(body), self.wfile, self.get_stderr(), environ, multithread=True, multiprocess=False)
        handler.request_handler = self
        handler.run(self.server.get_app())
        if handler.dropped:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return False
        return True

    def version_string(self) -> str:
        return _ResponseHandler.server_software

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _tokens(headers: HTTPMessage, name: str) -> List[str]:
    """The comma-separated values of every ``name`` header, lower-cased; empty ones kept."""
    return [token.strip().lower() for value in headers.get_all(name, []) for token in value.split(",")]


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung connection must never keep the process alive
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 1024  # the listen backlog, for a burst of clients; the kernel caps it at net.core.somaxconn
    request_timeout = 30.0  # seconds for a request's head and body to arrive, in all
    idle_timeout = 60.0  # seconds a kept-alive connection may wait for its next request
    max_connections = 512  # served at once, a thread each; more wait in the backlog
    max_body_bytes = 8 * 1024 * 1024

    def server_activate(self) -> None:
        super().server_activate()
        self._connections: Set[socket.socket] = set()
        self._changed = threading.Condition()  # guards _connections and _stopping
        self._stopping = False

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._changed:
            while len(self._connections) >= self.max_connections and not self._stopping:
                self._changed.wait()  # meanwhile, new connections queue in the listen backlog
            accepted = not self._stopping
            if accepted:
                self._connections.add(request)
        if accepted:
            super().process_request(request, client_address)
        else:
            self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        with self._changed:
            self._connections.discard(request)
            self._changed.notify()
        super().shutdown_request(request)

    def shutdown(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        super().shutdown()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.error("failed serving a connection from %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Cut every open connection: a stopped server must not go on answering kept-alive ones."""
        with self._changed:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ServerThread:
    """Serves a WSGI application from a background thread until ``stop``.

    Args:
        app: the WSGI application.
        host, port: where to listen; port 0 picks a free port (read ``url`` for it).
        request_timeout: seconds a request's head and body may take to arrive, in all.
        idle_timeout: seconds a kept-alive connection may wait for its next request.
        max_connections: connections served at once; more wait for one to end.
        max_body_bytes: the largest body taken; a larger one is answered 413 unread.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        request_timeout: float = ThreadingWSGIServer.request_timeout,
        idle_timeout: float = ThreadingWSGIServer.idle_timeout,
        max_connections: int = ThreadingWSGIServer.max_connections,
        max_body_bytes: int = ThreadingWSGIServer.max_body_bytes,
    ) -> None:
        self.server = ThreadingWSGIServer((host, port), _RequestHandler)
        self.server.set_app(app)
        self.server.request_timeout, self.server.idle_timeout = request_timeout, idle_timeout
        self.server.max_connections, self.server.max_body_bytes = max_connections, max_body_bytes
        bound_host, bound_port = self.server.server_address[:2]
        self.url = f"http://{_url_host(bound_host)}:{bound_port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="playhooks-server", daemon=True
        )

    def start(self) -> "ServerThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        self._thread.join(5)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
