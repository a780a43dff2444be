import pytest

from helpers import ServedInThread
from relay_support import PLAYCAMP_SECRET, PLAYFAB_SECRET, SECRET_ENV, write_config

pytest.importorskip("waitress", reason="the relay's tests need its server: pip install -e '.[test]'")


@pytest.fixture
def secret_env(monkeypatch):
    """The services' secrets, where the relay's config says to find them (and only there)."""
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def make_relay(tmp_path, emulator, secret_env):
    """Relays forwarding to the emulator, served by waitress on a thread; stopped after the test.

    ``make_relay(limits="...", keys=[...], extra="...", clock=...)`` returns the ``Relay``, with
    ``relay.url`` where it is served.
    """
    from playhooks.relay import Relay

    made = []

    def make(limits="", keys=None, extra="", clock=None, name="relay", upstreams=("playcamp", "playfab")):
        config = write_config(tmp_path / f"{name}.toml", emulator.url, limits=limits, keys=keys, extra=extra, upstreams=upstreams)
        options = {} if clock is None else {"clock": clock}
        relay = Relay(config, spool_dir=str(tmp_path / f"{name}-spool"), **options).start()
        served = ServedInThread(relay)
        relay.url = served.url
        made.append((relay, served))
        return relay

    yield make
    for relay, served in made:
        served.stop()
        relay.close(1)  # a request a test left hanging ends with the emulator, after this


@pytest.fixture
def emulator():
    """The services, taking only the relay's secrets: what arrives was sent with them."""
    from playhooks.emulator import Emulator

    with Emulator(playcamp_keys=[PLAYCAMP_SECRET], playfab_secret_keys=[PLAYFAB_SECRET]) as emulator:
        yield emulator
