"""HTTP for the delivery sinks: the only module that imports urllib3.

One connection pool per tracker, explicit connect and read timeouts, no retries of its own (the
spool schedules them), TLS always verified, against certifi's roots when it is installed (Ren'Py
bundles it, and on Windows Python's ssl module does not read the system's store). ``post`` never
raises for a delivery problem: it returns an ``Outcome``.
"""

import json
import logging
import ssl
from typing import Any, Dict, Optional, Tuple

import urllib3

from ._retry import RETRY, Outcome, classify

log = logging.getLogger("playhooks")

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0
USER_AGENT = "playhooks"


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class Transport:
    """Posts JSON and turns whatever happens into an ``Outcome`` (plus the decoded answer)."""

    def __init__(
        self, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT, connections: int = 1
    ) -> None:
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=connections,  # one per request in flight, kept alive
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            cert_reqs="CERT_REQUIRED",
            ssl_context=_ssl_context(),
        )

    def post(self, url: str, headers: Dict[str, str], body: bytes) -> Tuple[Outcome, Optional[Any]]:
        """POST ``body`` to ``url``; the outcome and, when there was one, the decoded JSON answer."""
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT, **headers}
        try:
            response = self._pool.request("POST", url, body=body, headers=headers, redirect=False)
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
        self._pool.clear()
