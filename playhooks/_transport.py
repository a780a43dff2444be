"""HTTP for the delivery sinks: the only module that imports urllib3.

One connection pool per lane, explicit connect and read timeouts, no retries of its own (the
spool schedules them), TLS always verified, against certifi's roots when it is installed (Ren'Py
bundles it, and on Windows Python's ssl module does not read the system's store). ``post`` never
raises for a delivery problem: it returns an ``Outcome``.

Each request goes out in one write, head and body together: urllib3 2 writes them separately,
which on loopback doubles the system calls, and on any network may hold the body back a round
trip behind a delayed ACK.
"""

import json
import ssl
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ._retry import RETRY, Outcome, classify

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0
USER_AGENT = "playhooks"
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}


class _OneWrite:
    """Gathers what a connection sends while it writes a request, and sends it at once."""

    _gathered: Optional[List[bytes]] = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._gathered = []
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
            data = b"".join(self._gathered)
        finally:
            self._gathered = None
        super().send(data)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        if self._gathered is not None and isinstance(data, (bytes, bytearray, memoryview)):
            self._gathered.append(bytes(data))
        else:
            super().send(data)  # type: ignore[misc]


class _HTTPConnection(_OneWrite, HTTPConnection):
    pass


class _HTTPSConnection(_OneWrite, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_shared_ssl_context: Optional[ssl.SSLContext] = None


def shared_ssl_context() -> ssl.SSLContext:
    """The process's TLS context, made once: reading the roots takes tens of milliseconds, and
    a context serves any number of client connections."""
    global _shared_ssl_context
    if _shared_ssl_context is None:
        try:
            import certifi
        except ImportError:
            _shared_ssl_context = ssl.create_default_context()
        else:
            _shared_ssl_context = ssl.create_default_context(cafile=certifi.where())
    return _shared_ssl_context


class Transport:
    """Posts JSON and turns whatever happens into an ``Outcome`` (plus the decoded answer).

    Args:
        connect_timeout, read_timeout: seconds, for each request.
        connections: connections kept alive per host: one per request in flight.
    """

    def __init__(
        self, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT, connections: int = 1
    ) -> None:
        self._manager = urllib3.PoolManager(
            num_pools=4,
            maxsize=connections,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            cert_reqs="CERT_REQUIRED",
            ssl_context=shared_ssl_context(),
        )
        self._manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        self._routes: Dict[str, Tuple[Any, str]] = {}  # url -> (its host's pool, its path)

    def post(self, url: str, headers: Dict[str, str], body: bytes) -> Tuple[Outcome, Optional[Any]]:
        """POST ``body`` to ``url``; the outcome and, when there was one, the decoded JSON answer."""
        try:
            route = self._routes.get(url)
            if route is None:
                route = self._routes[url] = (self._manager.connection_from_url(url), urllib.parse.urlsplit(url).path)
            pool, path = route
            response = pool.urlopen(
                "POST", path, body=body, headers={**_HEADERS, **headers}, retries=False, redirect=False, assert_same_host=False
            )
        except Exception as error:
            # No answer (refused, reset, timed out, TLS, or a request http.client would not
            # send): worth another try. The reason names the kind of failure only: the messages
            # of urllib3 and http.client can quote the request, keys included.
            return Outcome(RETRY, f"no answer: {type(error).__name__}"), None
        try:
            answer = json.loads(response.data) if response.data else None
        except ValueError:
            answer = None
        return classify(response.status, response.headers, answer), answer

    def close(self) -> None:
        self._manager.clear()
