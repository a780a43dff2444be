"""What the log says about repeated problems: the first of each kind as a warning, the rest at debug.

A game calls hooks every frame: a mistake made every frame must not write a warning, let alone
an error with a traceback, every frame.
"""

import logging
from collections.abc import Mapping

import pytest

import playhooks

from helpers import PLAYER

FRAMES = 120


class RaisingMapping(Mapping):
    """A body whose reading fails: a game's own mapping type with a bug."""

    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        raise RuntimeError("broken iterator")

    def __len__(self):
        return 1


def broken_sink(payload):
    raise RuntimeError("the sink is down")


MISTAKES = {
    "a-body-that-is-not-json": lambda tracker: tracker.on_character_event("x", body={"when": object()}, **PLAYER),
    "a-body-that-raises": lambda tracker: tracker.on_character_event("x", body=RaisingMapping(), **PLAYER),
    "a-bad-event-name": lambda tracker: tracker.on_character_event("not a name!", **PLAYER),
    "ending-a-session-that-is-not-one": lambda tracker: tracker.on_session_end("session-1"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_every_frame_is_one_warning(caplog, mistake):
    """120 frames of the same mistake: one warning, no error, no traceback; each still counted."""
    caplog.set_level(logging.DEBUG, logger="playhooks")
    with playhooks.Tracker(sinks=[playhooks.MemorySink()]) as tracker:
        for _ in range(FRAMES):
            MISTAKES[mistake](tracker)
            tracker.flush(timeout=5)  # a worker round a frame
        dropped = sum(tracker.stats()["dropped"].values())

    loud = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert 1 == len(loud), [record.getMessage() for record in loud]
    assert (logging.WARNING, False) == (loud[0].levelno, bool(loud[0].exc_info))
    assert dropped in (0, FRAMES)  # a payload's mistake is a drop; a bad session handle is ignored


def test_a_sink_failing_every_frame_is_one_warning_with_its_error(caplog):
    """A sink that raises each round: the first time says why; then quiet."""
    caplog.set_level(logging.DEBUG, logger="playhooks")
    with playhooks.Tracker(sinks=[broken_sink]) as tracker:
        for _ in range(FRAMES):
            tracker.on_character_event("x", **PLAYER)
            tracker.flush(timeout=5)
        dropped = tracker.stats()["dropped"]

    loud = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert ({"sink_error": FRAMES}, 1) == (dropped, len(loud))
    assert "the sink is down" in loud[0].getMessage()
