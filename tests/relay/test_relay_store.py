"""The relay's store: requests that arrive together are written together, each still answered
only once its own records are on disk."""

import threading

import pytest

from playhooks._spool import Record
from playhooks.relay._store import _GroupCommit

from helpers import wait_for


def records(number):
    return [Record(f"id-{number}", "event", {"n": number})]


class TestGroupCommit:
    def test_requests_that_wait_during_a_write_go_out_in_the_next_write_together(self):
        writes = []
        first_write_started, let_it_finish = threading.Event(), threading.Event()

        def write(batch):
            writes.append([record.id for record in batch])
            if len(writes) == 1:
                first_write_started.set()
                let_it_finish.wait(10)

        commit = _GroupCommit(write)
        first = threading.Thread(target=commit.put, args=(records(0),))
        first.start()
        assert first_write_started.wait(10)
        others = [threading.Thread(target=commit.put, args=(records(number),)) for number in range(1, 8)]
        for thread in others:
            thread.start()
        assert wait_for(lambda: len(commit._waiting) == 7, 10)
        assert len(writes) == 1  # none of them returned before its records were written
        let_it_finish.set()
        for thread in [first, *others]:
            thread.join(10)
        assert writes[0] == ["id-0"]
        assert sorted(writes[1]) == [f"id-{number}" for number in range(1, 8)]
        assert len(writes) == 2

    def test_a_failed_write_is_raised_to_every_request_it_held(self):
        def write(batch):
            raise OSError("the disk is full")

        commit = _GroupCommit(write)
        with pytest.raises(OSError, match="full"):
            commit.put(records(1))
        with pytest.raises(OSError, match="full"):
            commit.put(records(2))

    def test_alone_a_request_writes_at_once(self):
        writes = []
        commit = _GroupCommit(lambda batch: writes.append(len(batch)))
        for number in range(3):
            commit.put(records(number))
        assert writes == [1, 1, 1]


class TestSpoolStore:
    """``Spool.store``, the relay's way into the spool: on disk, or refused; never held, never dropping."""

    def spool(self, tmp_path, **bounds):
        from playhooks._spool import Spool

        return Spool(str(tmp_path / "spool"), "relay-test", lambda *drop: None, **bounds)

    def test_past_a_bound_it_refuses_and_keeps_what_it_has(self, tmp_path):
        from playhooks._spool import SpoolFull

        spool = self.spool(tmp_path, max_records=3)
        spool.store("playfab", records(1) + records(2), due=0)
        with pytest.raises(SpoolFull):
            spool.store("playfab", records(3) + records(4), due=0)
        assert spool.pending() == 2
        spool.store("playfab", records(5), due=0)
        assert spool.pending() == 3

    def test_dead_letters_make_room_for_new_records_and_waiting_ones_never_do(self, tmp_path):
        """After an outage the service refused, the relay must not refuse everything afterwards."""
        from playhooks._spool import SpoolFull

        spool = self.spool(tmp_path, max_bytes=600)
        spool.store("playcamp", [Record(f"dead-{n}", "session", {"pad": "x" * 100}) for n in range(3)], due=0)
        (claim,) = spool.claim_due("playcamp", now=1, max_records=10)
        spool.settle(claim, [], dead=list(claim.records))  # refused by the service: dead letters
        assert spool.pending() == 0 and spool.bytes > 300
        spool.store("playcamp", [Record(f"new-{n}", "session", {"pad": "x" * 100}) for n in range(3)], due=0)
        assert spool.pending() == 3  # stored, once the dead letters were dropped
        with pytest.raises(SpoolFull):
            spool.store("playcamp", [Record("one-more", "session", {"pad": "x" * 300})], due=0)
        assert spool.pending() == 3
