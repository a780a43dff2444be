"""Serving the relay: waitress under ``playhooks relay``, or any WSGI server through ``create_app``.

waitress is pure Python and runs on Windows too, so a studio without a Linux box still has a real
server; on Linux, gunicorn with ``gthread`` workers behind a buffering proxy (nginx) serves more.
Either way the application is the same, and each worker process forwards from the shared spool.
"""

import atexit
import os
import signal
import sys
from typing import Any, Optional, TextIO

from .._errors import ConfigurationError
from ._app import Relay

DEFAULT_PORT = 8788
DEFAULT_THREADS = 8


def serve(
    config: str,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    spool_dir: Optional[str] = None,
    threads: int = DEFAULT_THREADS,
    out: TextIO = sys.stdout,
) -> None:
    """Serve the relay with waitress until SIGINT or SIGTERM; SIGHUP reloads the config.

    Raises:
        ConfigurationError: the config cannot be used, or waitress is not installed.
        OSError: the address cannot be listened on.
    """
    try:
        import waitress
    except ImportError:
        raise ConfigurationError("playhooks relay serves with waitress: pip install 'playhooks[relay]'") from None
    relay = Relay(config, spool_dir=spool_dir)
    limit = relay.config.limits.max_body_bytes
    server: Any = waitress.create_server(
        relay,
        host=host,
        port=port,
        threads=threads,
        # Bodies a little over the limit reach the relay, which answers 413 and counts it; a body
        # many times over is cut off by waitress before it is buffered.
        max_request_body_size=4 * limit + 65536,
        channel_timeout=30,
        clear_untrusted_proxy_headers=True,
        expose_tracebacks=False,
        ident="playhooks-relay",
    )
    relay.start()
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: relay.reload())
    signal.signal(signal.SIGTERM, _exit)
    print(f"playhooks relay: serving on http://{_url_host(host)}:{server.effective_port}", file=out, flush=True)
    try:
        server.run()  # until SystemExit or KeyboardInterrupt, which it takes as the end
    finally:
        server.close()
        relay.close()


def create_app() -> Relay:
    """The relay for another WSGI server, started, from ``PLAYHOOKS_RELAY_CONFIG`` (the TOML
    file) and ``PLAYHOOKS_RELAY_SPOOL_DIR`` (optional). For gunicorn, without ``--preload`` (each
    worker makes its own, with its own forwarding threads)::

        PLAYHOOKS_RELAY_CONFIG=relay.toml gunicorn -k gthread -w 2 --threads 8 'playhooks.relay:create_app()'
    """
    path = os.environ.get("PLAYHOOKS_RELAY_CONFIG")
    if not path:
        raise ConfigurationError("PLAYHOOKS_RELAY_CONFIG: set it to the relay's TOML file")
    relay = Relay(path, spool_dir=os.environ.get("PLAYHOOKS_RELAY_SPOOL_DIR") or None).start()
    atexit.register(relay.close)
    return relay


def _exit(*_: Any) -> None:
    raise SystemExit(0)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
