"""A small threaded HTTP/1.1 server for WSGI applications: the emulator's (the relay, which studios
run in production, is served by waitress or gunicorn).

The standard library's ``wsgiref`` server answers HTTP/1.0, one request per connection, with
Nagle's algorithm on; a client then pays a TCP handshake per request and, on loopback, can stall
40 ms on a delayed ACK. This one keeps connections alive, sets ``TCP_NODELAY``, answers each
connection on its own thread, and lets an application cut a connection off without an answer
(``raise DropConnection``), which tests need to script network faults.

It is also the far end of every loopback benchmark, so it must not be their ceiling: an answer
the application gives whole (a list, as the emulator's are) goes out in one write, status line,
headers and body together, and the WSGI plumbing is its own few lines rather than ``wsgiref``'s
(which wrote an answer in five, and copied the process's environment into every request's).

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

import http
import io
import json
import logging
import re
import socket
import socketserver
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, NoReturn, Optional, Sequence, Set, Tuple
from urllib.parse import unquote
from wsgiref.util import is_hop_by_hop

log = logging.getLogger("playhooks.server")

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_LINE = 8 * 1024
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
SERVER_SOFTWARE = "playhooks"

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(%s) ([!-~]+) HTTP/([0-9]\.[0-9])\r?\n" % _TOKEN)
# The value greedy, its trailing blanks stripped after: a lazy value, tried one character at a time
# against the line's end, took twice as long.
_HEADER_LINE = re.compile(rb"(%s):[ \t]*([\t\x20-\x7e\x80-\xff]*)\r?\n" % _TOKEN)
_HEADER_NAME = re.compile(_TOKEN.decode())
_HEADER_VALUE = re.compile("[\t\x20-\x7e\x80-\xff]*")  # what latin-1 can carry, control characters aside
_STATUS = re.compile("[0-9]{3} [\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile("[0-9]+")
_ERROR_BODY = b'{"error": "the server failed to answer this request"}'

Fields = List[Tuple[str, str]]  # a request's headers in order, names lower-cased


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
        if self.deadline is None:
            return self._sock.recv_into(buffer)  # the socket's own timeout is the idle timeout
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("the request did not arrive in time")
        self._sock.settimeout(min(remaining, self._idle_timeout))
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._idle_timeout)


class _Request:
    """A request's line, headers and body, read whole before the application sees any of it."""

    __slots__ = ("line", "method", "target", "version", "fields", "body")

    def __init__(self) -> None:
        self.line, self.method, self.target, self.version = "", "", "", "HTTP/1.1"
        self.fields: Fields = []
        self.body = b""

    def tokens(self, name: str) -> List[str]:
        """The comma-separated values of every ``name`` header (lower-case), lower-cased; empty ones kept."""
        return [token.strip().lower() for field, value in self.fields if field == name for token in value.split(",")]

    def has(self, name: str) -> bool:
        return any(field == name for field, _ in self.fields)


class _Answer:
    """The answer to one request, as a WSGI application gives it (PEP 3333's ``start_response``).

    A body given whole, as a list or tuple, goes out with the head in one write; a body given bit by
    bit is sent as it comes. An answer without a ``Content-Length`` ends where the connection does;
    the server adds the length when the body is one block, as ``wsgiref`` does.
    """

    def __init__(self, handler: "_RequestHandler", head_only: bool) -> None:
        self._handler = handler
        self._head_only = head_only  # an answer to HEAD: its body would be read as the next answer's start
        self.status: Optional[str] = None
        self.headers: List[Tuple[str, str]] = []
        self.head_sent = False
        self.client_gone = False

    def start_response(self, status: str, headers: List[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:  # too late to answer otherwise: PEP 3333 says re-raise
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise AssertionError("start_response was called twice without exc_info")
        # Checked before anything is sent, so that a bad header is a clean 500, not half a head.
        if not (isinstance(status, str) and _STATUS.fullmatch(status)) or not all(
            can_send_header(name, value) for name, value in headers
        ):
            names = [name for name, _ in headers]  # values may be secrets: they stay out of the log
            raise ValueError(f"the application's status or headers cannot be sent: {status!r}, {names!r}")
        self.status, self.headers = status, list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """Send a part of the body now (PEP 3333's ``write``, and each part of a streamed body)."""
        if data:
            self.send(data, None)

    def send(self, data: bytes, length: Optional[int]) -> None:
        """Send ``data``, after the head if it has not gone yet (with ``length`` if the application gave none)."""
        if self.status is None:
            raise AssertionError("the application wrote a body before calling start_response")
        if self._head_only:
            data = b""
        if not self.head_sent:
            data = self._head(self.status, length) + data
            self.head_sent = True
        if data:
            self._send(data)

    def _head(self, status: str, length: Optional[int]) -> bytes:
        names = {name.lower() for name, _ in self.headers}
        lines = ["HTTP/1.1 " + status]
        if "date" not in names:
            lines.append("Date: " + _http_date())
        if "server" not in names:
            lines.append("Server: " + SERVER_SOFTWARE)
        lines.extend(name + ": " + value for name, value in self.headers)
        if "content-length" not in names:
            if length is None:
                self._handler.close_connection = True  # the answer ends where the connection does
            else:
                lines.append(f"Content-Length: {length}")
        if self._handler.close_connection:  # the client asked, spoke HTTP/1.0, or the answer has no length
            lines.append("Connection: close")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")

    def _send(self, data: bytes) -> None:
        try:
            self._handler.connection.sendall(data)
        except OSError:
            self.client_gone = True
            raise


_date_cache: Tuple[int, str] = (0, "")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date() -> str:
    """Now, as a ``Date`` header says it (RFC 9110, section 5.6.7); made once a second, not per answer."""
    global _date_cache
    second = int(time.time())
    cached_second, text = _date_cache
    if second != cached_second:
        t = time.gmtime(second)
        text = f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        _date_cache = (second, text)  # one tuple, swapped whole: threads see the old pair or the new
    return text


def _length(blocks: Sequence[bytes]) -> Optional[int]:
    """The length the server gives a body that came without one, as ``wsgiref`` does: one block's, or 0 for none."""
    if len(blocks) == 1:
        return len(blocks[0])
    return None if blocks else 0


def can_send_header(name: Any, value: Any) -> bool:
    """Whether a header is one an application may answer with: latin-1 text, no line breaks, not hop-by-hop."""
    return (
        isinstance(name, str)
        and isinstance(value, str)
        and bool(_HEADER_NAME.fullmatch(name))
        and not is_hop_by_hop(name)
        and bool(_HEADER_VALUE.fullmatch(value))
    )


class _RequestHandler(socketserver.BaseRequestHandler):
    """Serves one connection: reads each request whole, runs the application, writes its answer."""

    server: "ThreadingWSGIServer"
    connection: socket.socket

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(self.server.idle_timeout)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _DeadlineReader(self.connection, self.server.idle_timeout)
        self.rfile = io.BufferedReader(self._reader)
        self.close_connection = False

    def handle(self) -> None:
        while not self.close_connection and self._handle_one():
            pass

    def _handle_one(self) -> bool:
        """Read and answer one request; False once the connection is done with."""
        request = _Request()
        self._reader.deadline = None
        try:
            if not self.rfile.peek(1):
                return False  # the client closed the connection between requests
            self._reader.deadline = time.monotonic() + self.server.request_timeout
            self._read_head(request)
            request.body = self._read_body(request)
        except _Refusal as refusal:
            self._refuse(request, refusal)
            return False
        except OSError:
            return False  # the client left, or took too long: there is no one to answer
        return self._run_application(request)

    def _read_head(self, request: _Request) -> None:
        line = self._read_line(MAX_REQUEST_LINE, 414, "the request line is too long")
        match = _REQUEST_LINE.fullmatch(line)
        if match is None:
            raise _Refusal(400, "malformed request line")
        request.line = line.rstrip(b"\r\n").decode("ascii")
        request.method, request.target = match[1].decode("ascii"), match[2].decode("ascii")
        request.version = "HTTP/" + match[3].decode("ascii")
        if request.version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Refusal(505, "only HTTP/1.0 and HTTP/1.1 are served")
        request.fields = self._read_fields()
        self.close_connection = request.version == "HTTP/1.0" or "close" in request.tokens("connection")

    def _read_fields(self) -> Fields:
        fields: Fields = []
        size = 0
        while True:
            line = self._read_line(MAX_HEADER_LINE, 431, "a header line is too long")
            if line in (b"\r\n", b"\n"):
                return fields
            size += len(line)
            if size > MAX_HEAD or len(fields) >= MAX_HEADERS:
                raise _Refusal(431, "the headers are too many or too large")
            match = _HEADER_LINE.fullmatch(line)
            if match is None:
                raise _Refusal(400, "malformed header line")
            name, value = match.groups()
            fields.append((name.decode("ascii").lower(), value.rstrip(b" \t").decode("latin-1")))  # PEP 3333: latin-1

    def _read_line(self, limit: int, status: int, too_long: str) -> bytes:
        line = self.rfile.readline(limit + 1)
        if len(line) > limit:
            raise _Refusal(status, too_long)
        if line[-1:] != b"\n":
            raise ConnectionResetError("the client closed the connection mid-request")
        return line

    def _read_body(self, request: _Request) -> bytes:
        length = self._body_length(request)
        if length and request.version == "HTTP/1.1" and "100-continue" in request.tokens("expect"):
            self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise ConnectionResetError("the client closed the connection mid-body")
        return body

    def _body_length(self, request: _Request) -> int:
        """How many bytes of body follow the head, by the one framing this server takes."""
        if request.has("transfer-encoding"):
            self._refuse_transfer_encoding(request)
        lengths = [value for name, value in request.fields if name == "content-length"]
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

    def _refuse_transfer_encoding(self, request: _Request) -> NoReturn:
        codings = request.tokens("transfer-encoding")
        well_formed = codings[-1:] == ["chunked"] and codings.count("chunked") == 1
        well_formed = well_formed and all(_HEADER_NAME.fullmatch(coding) for coding in codings)
        if not well_formed or request.has("content-length") or request.version == "HTTP/1.0":
            raise _Refusal(400, "malformed Transfer-Encoding")
        raise _Refusal(501, "Transfer-Encoding is not supported: send a Content-Length")

    def _refuse(self, request: _Request, refusal: _Refusal) -> None:
        self.close_connection = True
        body = json.dumps({"error": refusal.message}).encode()
        head = (
            f"HTTP/1.1 {refusal.status} {http.HTTPStatus(refusal.status).phrase}\r\n"
            f"Date: {_http_date()}\r\nServer: {SERVER_SOFTWARE}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        log.debug('%s "%s" %s (%s)', self.client_address[0], request.line, refusal.status, refusal.message)
        try:
            self.connection.sendall(head.encode("latin-1") + body)
        except OSError:
            pass  # the client is gone: nothing to tell it

    def _run_application(self, request: _Request) -> bool:
        """Answer ``request`` with the application; False if the connection must now close."""
        answer = _Answer(self, head_only=request.method == "HEAD")
        result: Optional[Iterable[bytes]] = None
        try:
            result = self.server.app(self._environ(request), answer.start_response)
            if isinstance(result, (list, tuple)):  # the body whole: one write
                answer.send(b"".join(result), _length(result))
            else:
                for data in result:
                    answer.write(data)
                answer.send(b"", 0)  # the head, if nothing was written: an empty body
        except DropConnection:
            self._drop()
            return False
        except Exception:
            if answer.client_gone:
                return False  # no one to answer
            self._fail(request, answer)
            return False
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.error("the application failed closing its answer to %s", request.target, exc_info=True)
                    self.close_connection = True
        log.debug('%s "%s" %s', self.client_address[0], request.line, (answer.status or "")[:3])
        return True

    def _environ(self, request: _Request) -> Dict[str, Any]:
        """The request as PEP 3333 gives it to an application; headers as ``HTTP_*`` keys, as CGI names them."""
        path, _, query = request.target.partition("?")
        environ: Dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.server.server_name,
            "SERVER_PORT": self.server.server_port,
            "SERVER_PROTOCOL": request.version,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.fields:
            key = name.upper().replace("-", "_")
            if name == "content-type":
                environ.setdefault("CONTENT_TYPE", value)
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                continue  # the length is the body's own (its digits may carry leading zeros)
            elif "HTTP_" + key in environ:
                environ["HTTP_" + key] += "," + value  # repeated headers, comma-separated
            else:
                environ["HTTP_" + key] = value
        if request.body or request.has("content-length"):
            environ["CONTENT_LENGTH"] = str(len(request.body))
        return environ

    def _drop(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _fail(self, request: _Request, answer: _Answer) -> None:
        """The application failed: log it, and answer 500 unless its answer had begun."""
        log.error("the application failed on %s", request.target.partition("?")[0], exc_info=True)
        self.close_connection = True  # whatever was sent of this answer, the connection cannot be trusted to go on
        if answer.head_sent:
            return
        answer.status, answer.headers = "500 Internal Server Error", [("Content-Type", "application/json")]
        try:
            answer.send(_ERROR_BODY, len(_ERROR_BODY))
        except OSError:
            pass  # the client is gone: nothing to tell it


class ThreadingWSGIServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True  # a hung connection must never keep the process alive
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 1024  # the listen backlog, for a burst of clients; the kernel caps it at net.core.somaxconn
    request_timeout = 30.0  # seconds for a request's head and body to arrive, in all
    idle_timeout = 60.0  # seconds a kept-alive connection may wait for its next request
    max_connections = 512  # served at once, a thread each; more wait in the backlog
    max_body_bytes = 8 * 1024 * 1024
    app: Callable[..., Any]

    def server_bind(self) -> None:
        super().server_bind()
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), str(port)

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
        self.server.app = app
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
