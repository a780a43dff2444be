"""The worker under load: a burst costs one spool write per round, and a steady stream of hook
calls never starves the checkpoints."""

import os
import threading
import time

import playhooks

from helpers import PLAYER, SECRET_KEY, playfab_tracker, wait_for


def queue_files(spool):
    folder = os.path.join(spool, "playfab", "queue")
    return os.listdir(folder) if os.path.isdir(folder) else []


class TestBursts:
    def test_a_burst_of_thousands_is_written_in_one_file_per_round(self, emulator, spool):
        """3,000 events called at once reach the spool in a file a round (a few), not a file per 16."""
        emulator.fail_next(1, 429, headers={"Retry-After": "3600"}, route="playfab")  # the sender waits an hour
        with playfab_tracker(emulator, spool) as tracker:
            tracker.on_character_event("first", **PLAYER)
            assert wait_for(lambda: tracker.stats().get("retried", 0) == 1, timeout=10)
            before = len(queue_files(spool))

            for number in range(3000):
                tracker.on_character_event("level_completed", body={"n": number}, **PLAYER)
            tracker.flush(timeout=10)

            assert 3001 == tracker.stats()["written_to_spool"]
            assert len(queue_files(spool)) - before <= 10  # a file a round (188 files, one per 16, before)


class TestSteadyStreams:
    def test_checkpoints_keep_their_interval_under_a_stream_the_worker_cannot_keep_up_with(self, spool):
        """A thread calling hooks as fast as it can for two seconds: the open session's checkpoint
        is still rewritten every interval, never staler than twice it."""
        interval = 0.5
        tracker = playhooks.Tracker(
            [playhooks.PlayFab("ABCD", SECRET_KEY, "http://127.0.0.1:9")],  # nothing listens: all waits in the spool
            spool_dir=spool,
            checkpoint_interval=interval,
            max_queue=2000,
        )
        session = tracker.on_session_start("player-1", **PLAYER)
        tracker.flush(timeout=5)
        checkpoint = os.path.join(spool, "sessions", f"{session.id}.json")
        streaming = threading.Event()
        streaming.set()

        def stream():
            while streaming.is_set():
                tracker.on_character_event("coin_collected", **PLAYER)

        producer = threading.Thread(target=stream)
        producer.start()
        staleness, sampling = [], threading.Event()
        ends = time.monotonic() + 2.0
        try:
            while time.monotonic() < ends:
                staleness.append(time.time() - os.stat(checkpoint).st_mtime)
                sampling.wait(0.02)
        finally:
            streaming.clear()
            producer.join(10)
            tracker.close(timeout=2)

        assert max(staleness) <= 2 * interval, f"a checkpoint went {max(staleness):.2f} s stale"
