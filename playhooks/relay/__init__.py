"""``playhooks relay``: the studio's own small service that holds the server secrets.

A shipped game holds only a write-only ingest key. It sends the relay the same requests it would
send PlayCamp and PlayFab; the relay checks them, applies its limits, stores them durably, and
forwards them upstream with the real keys through the same spool and sender as a tracker.

    playhooks relay --config relay.toml                    # waitress, on 127.0.0.1:8788
    PLAYHOOKS_RELAY_CONFIG=relay.toml gunicorn -k gthread -w 2 'playhooks.relay:create_app()'
"""

from ._app import Relay
from ._config import RelayConfig, load_config
from ._serve import create_app, serve

__all__ = ["Relay", "RelayConfig", "create_app", "load_config", "serve"]
