import pytest

import playhooks
from playhooks.testing import ManualClock


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
