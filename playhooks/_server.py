"""A small threaded HTTP/1.1 server for WSGI applications: the emulator's, and the relay's.

The standard library's ``wsgiref`` server answers HTTP/1.0, one request per connection, with
Nagle's algorithm on; a client then pays a TCP handshake per request and, on loopback, can stall
40 ms on a delayed ACK. This one keeps connections alive, sets ``TCP_NODELAY``, answers each
connection on its own thread, and lets an application cut a connection off without an answer
(``raise DropConnection``), which tests need to script network faults.
"""

import logging
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable, Dict, Set
from wsgiref.handlers import SimpleHandler
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

log = logging.getLogger("playhooks.server")

_MAX_REQUEST_LINE = 65536
CLOSE_CONNECTION = "playhooks.close_connection"  # an environ key: call it to close after the answer


class DropConnection(Exception):
    """Raised by an application to close the connection without sending any answer."""


class _ResponseHandler(SimpleHandler):
    http_version = "1.1"
    server_software = "playhooks"
    dropped = False

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        if self.request_handler.close_connection:  # the client asked, or spoke HTTP/1.0: say so
            self.headers["Connection"] = "close"

    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], DropConnection):
            self.dropped = True
            return
        log.exception("the application failed on %s", self.environ.get("PATH_INFO"))
        super().handle_error()


class _RequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # persistent connections; every answer carries Content-Length
    timeout = 60  # an idle kept-alive connection is closed after this many seconds

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        self.close_connection = False
        while not self.close_connection:
            if not self._handle_one():
                break

    def _handle_one(self) -> bool:
        try:
            self.raw_requestline = self.rfile.readline(_MAX_REQUEST_LINE + 1)
        except (socket.timeout, OSError):
            return False
        if not self.raw_requestline:
            return False  # the client closed the connection
        if len(self.raw_requestline) > _MAX_REQUEST_LINE:
            self.send_error(414)
            return False
        if not self.parse_request():
            return False
        if self.headers.get("Transfer-Encoding"):
            # Bodies come with a Content-Length; a chunked one left unread would be taken for the
            # next request on this connection.
            self.send_error(501, "Transfer-Encoding is not supported: send a Content-Length")
            return False
        handler = _ResponseHandler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True, multiprocess=False
        )
        handler.request_handler = self
        handler.run(self.server.get_app())
        if handler.dropped:
            self.connection.shutdown(socket.SHUT_RDWR)
            return False
        return True

    def get_environ(self) -> Dict[str, Any]:
        environ = super().get_environ()
        # An application that answers without reading the whole body (a 413, say) calls this:
        # what it left unread must not be parsed as the next request.
        environ[CLOSE_CONNECTION] = lambda: setattr(self, "close_connection", True)
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung connection must never keep the process alive
    allow_reuse_address = True
    block_on_close = False

    def server_activate(self) -> None:
        super().server_activate()
        self._connections: Set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open connection: a stopped server must not go on answering kept-alive ones."""
        with self._connections_lock:
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
    """

    def __init__(self, app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = ThreadingWSGIServer((host, port), _RequestHandler)
        self.server.set_app(app)
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
