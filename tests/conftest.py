import pytest

import playhooks
from playhooks.emulator import Emulator
from playhooks.testing import ManualClock

from helpers import FAST, sinks


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def sink():
    return playhooks.MemorySink()


@pytest.fixture
def tracker(sink, clock):
    tracker = playhooks.Tracker(sinks=[sink], clock=clock)
    yield tracker
    tracker.close(timeout=5)


@pytest.fixture
def strict_tracker(sink, clock):
    tracker = playhooks.Tracker(sinks=[sink], clock=clock, strict=True)
    yield tracker
    tracker.close(timeout=5)


@pytest.fixture(autouse=True)
def _no_default_tracker():
    yield
    playhooks.reset()


@pytest.fixture
def emulator():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def spool(tmp_path):
    return str(tmp_path / "spool")


@pytest.fixture
def make_tracker(emulator, spool):
    """Trackers sending to the emulator through ``spool``, on a ManualClock, closed after the test."""
    made = []

    def make(**settings):
        settings.setdefault("spool_dir", spool)
        settings.setdefault("retry", FAST)
        settings.setdefault("clock", ManualClock())
        tracker = playhooks.Tracker(sinks(emulator), **settings)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.close(timeout=5)
