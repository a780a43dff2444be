"""The durable spool on real files: claiming, settling, reclaiming, quarantine, bounds, checkpoints.

Times are injected (``put(..., due=...)``, ``claim_due(..., now=...)``): nothing sleeps. POSIX only.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from playhooks._owners import BOOT_ID, NAMESPACE, STALE_OWNER_SECONDS, new_owner, retire_owner
from playhooks._spool import Record, Spool

NOW = 1_700_000_000.0  # the injected wall clock, in seconds
HOUR = 3600.0
PLAYFAB = "playfab"  # events: expendable under the bounds
PLAYCAMP = "playcamp"  # sessions: the playtime itself

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the spool's guarantees are tested on POSIX")


def record(record_id, created=NOW, **fields):
    return Record(id=record_id, kind="event", data={"name": record_id, **fields}, created=created)


def ids(claims):
    return [item.id for claim in claims for item in claim.records]


def listing(spool, *parts):
    folder = os.path.join(spool.directory, *parts)
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def read_records(path):
    with open(path, encoding="utf-8") as file:
        return [Record.from_line(line) for line in file]


def queued_ids(spool, destination):
    folder = os.path.join(spool.directory, destination, "queue")
    return sorted(item.id for name in listing(spool, destination, "queue") for item in read_records(os.path.join(folder, name)))


def queue_name(due=NOW, count=1, created=NOW, token="0123456789ab"):
    """A queue file name as ``put`` makes it."""
    return f"{int(due * 1000):013d}-{count}-{int(created * 1000):013d}-{token}.jsonl"


def write_raw(spool, destination, name, text):
    """Place a file in a queue by hand, bypassing ``put``."""
    folder = os.path.join(spool.directory, destination, "queue")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", encoding="utf-8") as file:
        file.write(text)


def finished_pid():
    """The pid of a process that has exited (and been reaped): a dead owner's pid."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.fixture
def drops():
    return []


@pytest.fixture
def directory(tmp_path):
    return str(tmp_path / "spool")


@pytest.fixture
def owners():
    """Make live owners of this process; retire them after the test."""
    made = []

    def make():
        owner = new_owner()
        made.append(owner)
        return owner

    yield make
    for owner in made:
        retire_owner(owner)


@pytest.fixture
def make_spool(directory, drops, owners):
    def make(owner=None, **bounds):
        bounds.setdefault("expendable", [PLAYFAB])
        return Spool(directory, owner=owner or owners(), drop=lambda *drop: drops.append(drop), **bounds)

    return make


@pytest.fixture
def spool(make_spool):
    return make_spool()


@pytest.fixture
def other_process():
    """A live process other than this one, that waits until the test ends."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield child
    child.stdin.close()
    child.wait()


class TestPutAndClaim:
    def test_claim_due_returns_records_in_due_order(self, spool):
        """Files come back oldest due first, whatever order they were put in."""
        spool.put(PLAYFAB, [record("third")], due=NOW - 1)
        spool.put(PLAYFAB, [record("first")], due=NOW - 30)
        spool.put(PLAYFAB, [record("second")], due=NOW - 10)

        assert ["first", "second", "third"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=100))

    def test_records_of_one_file_keep_their_order(self, spool):
        """A file holds one round's records, in the order they were put."""
        spool.put(PLAYFAB, [record("a"), record("b"), record("c")], due=NOW)

        assert ["a", "b", "c"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=100))

    def test_records_round_trip(self, spool):
        """A claimed record is the record that was put: id, kind, data, attempts, created."""
        put = Record(id="r1", kind="session", data={"zone": "Forêt", "n": [1, 2.5, None]}, attempts=3, created=NOW - 5)
        spool.put(PLAYCAMP, [put], due=NOW)

        [claim] = spool.claim_due(PLAYCAMP, now=NOW, max_records=100)

        assert (PLAYCAMP, (put,)) == (claim.destination, claim.records)

    def test_claimed_files_move_to_claimed_under_the_owner(self, spool):
        """Claiming renames the file into claimed/ as ``<owner>~<name>``; the queue is left empty."""
        spool.put(PLAYFAB, [record("a")], due=NOW)
        [name] = listing(spool, PLAYFAB, "queue")

        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)

        assert [] == listing(spool, PLAYFAB, "queue")
        assert [f"{spool.owner}~{name}"] == listing(spool, PLAYFAB, "claimed")
        assert os.path.join(spool.directory, PLAYFAB, "claimed", f"{spool.owner}~{name}") == claim.path

    def test_records_not_yet_due_are_not_claimed(self, spool):
        """A file due later stays in the queue; the due ones before it are claimed."""
        spool.put(PLAYFAB, [record("due")], due=NOW)
        spool.put(PLAYFAB, [record("later")], due=NOW + 60)

        assert ["due"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=100))
        assert 1 == len(listing(spool, PLAYFAB, "queue"))

    def test_a_record_is_claimed_once_its_due_time_comes(self, spool):
        """At exactly its due time a record is due."""
        spool.put(PLAYFAB, [record("later")], due=NOW + 60)

        assert [] == spool.claim_due(PLAYFAB, now=NOW + 59.999, max_records=100)
        assert ["later"] == ids(spool.claim_due(PLAYFAB, now=NOW + 60, max_records=100))

    def test_a_retry_wait_within_two_hours_is_respected(self, spool):
        """A record due an hour from now (the longest Retry-After taken literally) waits."""
        spool.put(PLAYFAB, [record("retry")], due=NOW + HOUR + 1)

        assert [] == spool.claim_due(PLAYFAB, now=NOW, max_records=100)

    @pytest.mark.parametrize(
        "ahead",
        [
            pytest.param(2 * HOUR + 1, id="2h-and-1s"),
            pytest.param(24 * HOUR, id="1-day"),
            pytest.param(10 * 365 * 24 * HOUR, id="10-years"),
        ],
    )
    def test_far_future_due_is_due_now(self, spool, ahead):
        """A due time more than two hours ahead means the wall clock was set back: it is due now."""
        spool.put(PLAYFAB, [record("stranded")], due=NOW + ahead)

        assert ["stranded"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=100))

    def test_far_future_due_is_due_now_behind_a_file_not_yet_due(self, spool):
        """After the clock is set back, old records are due now even when a new retry waits a minute."""
        spool.put(PLAYFAB, [record("written-before-the-clock-went-back")], due=NOW + 3 * HOUR)
        spool.put(PLAYFAB, [record("retry-in-a-minute")], due=NOW + 60)

        assert ["written-before-the-clock-went-back"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=100))

    def test_max_records_bounds_a_claim_by_whole_files(self, spool):
        """Files are taken while they fit in max_records."""
        for n in range(3):
            spool.put(PLAYFAB, [record(f"{n}a"), record(f"{n}b")], due=NOW - 10 + n)

        assert ["0a", "0b", "1a", "1b"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=5))
        assert ["2a", "2b"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=5))

    def test_the_first_file_is_claimed_even_when_larger_than_max_records(self, spool):
        """A file bigger than the batch is still sent, alone, so it cannot block the queue."""
        spool.put(PLAYFAB, [record(f"r{n}") for n in range(5)], due=NOW - 1)
        spool.put(PLAYFAB, [record("next")], due=NOW)

        assert ["r0", "r1", "r2", "r3", "r4"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=1))

    def test_destinations_are_separate(self, spool):
        """Claiming for one destination leaves the other's records alone."""
        spool.put(PLAYFAB, [record("event")], due=NOW)
        spool.put(PLAYCAMP, [record("session")], due=NOW)

        assert ["event"] == ids(spool.claim_due(PLAYFAB, now=NOW, max_records=100))
        assert [PLAYCAMP, PLAYFAB] == spool.destinations()
        assert 1 == len(listing(spool, PLAYCAMP, "queue"))

    def test_nothing_to_claim(self, spool):
        """An empty or unknown destination gives no claims."""
        assert [] == spool.claim_due(PLAYFAB, now=NOW, max_records=100)

    def test_an_empty_put_writes_nothing(self, spool):
        """Putting no records makes no file."""
        spool.put(PLAYFAB, [], due=NOW)

        assert [] == listing(spool, PLAYFAB, "queue")

    def test_next_due_is_the_earliest_due_time(self, spool):
        """next_due says when the first waiting record may go, or None."""
        assert None is spool.next_due(PLAYFAB)

        spool.put(PLAYFAB, [record("b")], due=NOW + 20)
        spool.put(PLAYFAB, [record("a")], due=NOW + 10)

        assert NOW + 10 == spool.next_due(PLAYFAB)


class TestSettle:
    def test_retry_requeues_with_the_new_due_time_and_attempts_kept(self, spool):
        """A record to retry goes back to the queue, due at its new time, with its attempt count."""
        spool.put(PLAYFAB, [record("r1")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        [retried] = claim.records
        retried.attempts += 1
        retried.error = "HTTP 503"

        spool.settle(claim, retry=[(retried, NOW + 30)], dead=[])

        assert [] == listing(spool, PLAYFAB, "claimed")
        assert NOW + 30 == spool.next_due(PLAYFAB)
        assert [] == spool.claim_due(PLAYFAB, now=NOW + 29, max_records=100)
        [again] = spool.claim_due(PLAYFAB, now=NOW + 30, max_records=100)
        assert [("r1", 1, NOW)] == [(item.id, item.attempts, item.created) for item in again.records]

    def test_retries_with_different_due_times_go_to_separate_files(self, spool):
        """Each due time gets its own file, so each record waits exactly as long as it was told."""
        spool.put(PLAYFAB, [record("soon"), record("late")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        soon, late = claim.records

        spool.settle(claim, retry=[(soon, NOW + 5), (late, NOW + 500)], dead=[])

        assert ["soon"] == ids(spool.claim_due(PLAYFAB, now=NOW + 5, max_records=100))
        assert ["late"] == ids(spool.claim_due(PLAYFAB, now=NOW + 500, max_records=100))

    def test_dead_records_go_to_dead_with_their_error(self, spool):
        """A refused record is written to dead/, named after its destination, with the error."""
        spool.put(PLAYFAB, [record("refused")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        [refused] = claim.records
        refused.attempts += 1
        refused.error = "HTTP 400 InvalidParams: Invalid input parameters"

        spool.settle(claim, retry=[], dead=[refused])

        [name] = listing(spool, "dead")
        assert name.startswith(f"{PLAYFAB}~")
        assert [refused] == read_records(os.path.join(spool.directory, "dead", name))
        assert ([], [], 0) == (listing(spool, PLAYFAB, "claimed"), listing(spool, PLAYFAB, "queue"), spool.pending())

    def test_delivered_records_leave_nothing_behind(self, spool):
        """Settling with nothing to retry and nothing dead removes the claim and writes nothing."""
        spool.put(PLAYFAB, [record("sent")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)

        spool.settle(claim, retry=[], dead=[])

        assert [[], [], [], []] == [
            listing(spool, PLAYFAB, "queue"),
            listing(spool, PLAYFAB, "claimed"),
            listing(spool, "dead"),
            listing(spool, "tmp"),
        ]

    def test_a_mixed_claim_is_split_three_ways(self, spool):
        """Delivered records vanish, retried ones are queued, dead ones kept: each exactly once."""
        spool.put(PLAYFAB, [record("sent"), record("retried"), record("refused")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        _, retried, refused = claim.records

        spool.settle(claim, retry=[(retried, NOW + 1)], dead=[refused])

        [dead_name] = listing(spool, "dead")
        assert ["retried"] == queued_ids(spool, PLAYFAB)
        assert ["refused"] == [item.id for item in read_records(os.path.join(spool.directory, "dead", dead_name))]
        assert (1, []) == (spool.pending(), listing(spool, PLAYFAB, "claimed"))

    def test_settling_twice_is_harmless(self, spool):
        """A claim already removed is not an error."""
        spool.put(PLAYFAB, [record("sent")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        spool.settle(claim, retry=[], dead=[])

        spool.settle(claim, retry=[], dead=[])

        assert 0 == spool.pending()

    def test_a_claim_taken_back_is_not_settled_twice(self, make_spool, owners):
        """A tracker closed mid-send whose claim another took back writes nothing when it settles."""
        owner = owners()
        closing = make_spool(owner=owner)
        closing.put(PLAYFAB, [record("in-flight")], due=NOW)
        [claim] = closing.claim_due(PLAYFAB, now=NOW, max_records=100)
        retire_owner(owner)
        assert 1 == make_spool().reclaim()

        closing.settle(claim, retry=[(claim.records[0], NOW + 30)], dead=[])

        assert (["in-flight"], [], 1) == (queued_ids(closing, PLAYFAB), listing(closing, "dead"), closing.pending())

    def test_release_puts_a_claim_back(self, spool):
        """A released claim returns to the queue under its original name, untouched."""
        spool.put(PLAYFAB, [record("a"), record("b")], due=NOW)
        [name] = listing(spool, PLAYFAB, "queue")
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)

        spool.release(claim)

        assert ([name], []) == (listing(spool, PLAYFAB, "queue"), listing(spool, PLAYFAB, "claimed"))
        assert list(claim.records) == [item for again in spool.claim_due(PLAYFAB, now=NOW, max_records=100) for item in again.records]


class Crash(BaseException):
    """The process dies here (SIGKILL): nothing after this line runs."""


class TestSettlingIsCrashSafe:
    @pytest.mark.parametrize("dies_at", ["rename", "remove", "replace"])
    def test_a_crash_while_settling_never_leaves_a_record_in_two_files(self, make_spool, monkeypatch, dies_at):
        """Records to retry go back to the queue in one step: die at any file operation of a
        settle and each record is in exactly one of queue/ and claimed/."""
        spool = make_spool()
        spool.put(PLAYFAB, [record("a"), record("b")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        real = getattr(os, dies_at)
        calls = []

        def dies_on_the_second_call(*arguments, **keywords):
            calls.append(arguments)
            if len(calls) == 2:
                raise Crash(dies_at)
            return real(*arguments, **keywords)

        monkeypatch.setattr(os, dies_at, dies_on_the_second_call)
        with pytest.raises(Crash):
            spool.settle(claim, retry=[(record, NOW + 30) for record in claim.records], dead=[])
            raise Crash("after the settle")
        monkeypatch.undo()

        assert {"a": 1, "b": 1} == record_copies(spool)


    @pytest.mark.parametrize("dies_at", [("replace", 1), ("remove", 1), ("replace", 2), ("nowhere", 0)])
    def test_after_a_crash_while_settling_the_next_tracker_sends_each_record_left(self, make_spool, owners, monkeypatch, dies_at):
        """One record of three delivered, two to retry: settle rewrites the claimed file to hold
        the two, then renames it into the queue. Killed at any file operation of it, the next
        tracker takes the claim back and finds the two, not the delivered one, and quarantines
        nothing (the chaos soak once caught a file rewritten, not yet renamed, whose name still
        said three)."""
        function, call = dies_at
        owner = owners()
        spool = make_spool(owner=owner)
        spool.put(PLAYFAB, [record("a"), record("b"), record("c")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        first, delivered, last = claim.records
        spool.mark_sent(claim, delivered)
        if function != "nowhere":
            real = getattr(os, function)
            calls = []

            def dies_on_the_chosen_call(*arguments, **keywords):
                calls.append(arguments)
                if len(calls) == call:
                    raise Crash(function)
                return real(*arguments, **keywords)

            monkeypatch.setattr(os, function, dies_on_the_chosen_call)
        with pytest.raises(Crash):
            spool.settle(claim, retry=[(first, NOW + 30), (last, NOW + 30)], dead=[])
            raise Crash("after the settle")
        monkeypatch.undo()
        retire_owner(owner)
        restarted = make_spool()
        restarted.reclaim()

        assert ["a", "c"] == sorted(ids(restarted.claim_due(PLAYFAB, now=NOW + 60, max_records=100)))
        assert ([], 0) == (listing(restarted, "quarantine"), restarted.quarantined)


def record_copies(spool):
    copies = {}
    for part in ("queue", "claimed"):
        folder = os.path.join(spool.directory, PLAYFAB, part)
        for name in listing(spool, PLAYFAB, part):
            with open(os.path.join(folder, name), encoding="utf-8") as file:
                for line in file:
                    identifier = Record.from_line(line).id
                    copies[identifier] = copies.get(identifier, 0) + 1
    return copies


class TestSharing:
    def test_a_file_claimed_by_one_owner_is_not_claimed_by_another(self, make_spool):
        """Two trackers on one spool: what one claimed, the other does not see."""
        first, second = make_spool(), make_spool()
        for n in range(3):
            first.put(PLAYFAB, [record(f"r{n}")], due=NOW - 3 + n)

        assert ["r0", "r1", "r2"] == ids(first.claim_due(PLAYFAB, now=NOW, max_records=100))
        assert [] == second.claim_due(PLAYFAB, now=NOW, max_records=100)

    def test_another_owner_claims_what_the_first_left(self, make_spool):
        """Two trackers share the queue: each takes a different file."""
        first, second = make_spool(), make_spool()
        first.put(PLAYFAB, [record("a")], due=NOW - 1)
        first.put(PLAYFAB, [record("b")], due=NOW)

        assert (["a"], ["b"]) == (
            ids(first.claim_due(PLAYFAB, now=NOW, max_records=1)),
            ids(second.claim_due(PLAYFAB, now=NOW, max_records=1)),
        )

    @pytest.mark.parametrize("shared", [False, True], ids=["spool-per-thread", "one-shared-spool"])
    def test_racing_threads_claim_every_record_exactly_once(self, make_spool, shared):
        """Eight threads draining one queue at once claim each record once in total."""
        writer = make_spool()
        expected = []
        for n in range(300):
            batch = [record(f"r{n}-{k}") for k in range(1 + n % 3)]
            expected.extend(item.id for item in batch)
            writer.put(PLAYFAB, batch, due=NOW - 300 + n)
        spools = [writer] * 8 if shared else [make_spool() for _ in range(8)]
        start = threading.Barrier(len(spools))

        def drain(spool):
            start.wait()
            claimed = []
            while True:
                claims = spool.claim_due(PLAYFAB, now=NOW, max_records=4)
                if not claims:
                    return claimed
                claimed.extend(ids(claims))

        with ThreadPoolExecutor(len(spools)) as pool:
            results = [future.result() for future in [pool.submit(drain, spool) for spool in spools]]

        claimed = [item for result in results for item in result]
        assert sorted(expected) == sorted(claimed)
        assert (300, []) == (len(listing(writer, PLAYFAB, "claimed")), listing(writer, PLAYFAB, "queue"))

    def test_racing_processes_claim_every_record_exactly_once(self, directory, spool):
        """Four processes draining one spool claim each record once in total."""
        expected = [f"r{n}" for n in range(400)]
        for n, record_id in enumerate(expected):
            spool.put(PLAYFAB, [record(record_id)], due=NOW - 400 + n)
        script = (
            "import json, sys\n"
            "from playhooks._owners import new_owner\nfrom playhooks._spool import Spool\n"
            "spool = Spool(sys.argv[1], new_owner(), lambda *drop: None)\n"
            "sys.stdin.read()\n"  # start together: wait until every process is up
            "claimed = []\n"
            "while True:\n"
            "    claims = spool.claim_due('playfab', float(sys.argv[2]), 3)\n"
            "    if not claims:\n"
            "        break\n"
            "    claimed += [item.id for claim in claims for item in claim.records]\n"
            "print(json.dumps(claimed))\n"
        )
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script, directory, repr(NOW)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        for child in children:
            child.stdin.close()
        outputs = [child.stdout.read() for child in children]
        for child in children:
            child.stdout.close()
            assert 0 == child.wait()

        claimed = [item for output in outputs for item in json.loads(output)]
        assert sorted(expected) == sorted(claimed)


class TestReclaim:
    def test_a_dead_process_claims_are_returned(self, directory, make_spool):
        """Files claimed by an owner whose process has exited go back to the queue, under their names."""
        dead = make_spool(owner=f"{finished_pid()}.{NAMESPACE}.0123456789ab")
        dead.put(PLAYFAB, [record("orphan")], due=NOW)
        names = listing(dead, PLAYFAB, "queue")
        dead.claim_due(PLAYFAB, now=NOW, max_records=100)
        live = make_spool()

        assert 1 == live.reclaim()
        assert (names, []) == (listing(live, PLAYFAB, "queue"), listing(live, PLAYFAB, "claimed"))
        assert ["orphan"] == ids(live.claim_due(PLAYFAB, now=NOW, max_records=100))

    def test_a_retired_owner_of_this_process_is_dead(self, make_spool, owners):
        """A closed tracker of this very process (same pid) has its claims returned."""
        owner = owners()
        closed = make_spool(owner=owner)
        closed.put(PLAYFAB, [record("orphan")], due=NOW)
        closed.claim_due(PLAYFAB, now=NOW, max_records=100)
        retire_owner(owner)
        live = make_spool()

        assert 1 == live.reclaim()
        assert ["orphan"] == ids(live.claim_due(PLAYFAB, now=NOW, max_records=100))

    def test_a_live_owner_of_this_process_keeps_its_claims(self, make_spool):
        """A live tracker's claims are not taken from it."""
        busy = make_spool()
        busy.put(PLAYFAB, [record("sending")], due=NOW)
        busy.claim_due(PLAYFAB, now=NOW, max_records=100)
        other = make_spool()

        assert 0 == other.reclaim()
        assert 1 == len(listing(other, PLAYFAB, "claimed"))

    def test_a_live_owner_in_another_process_keeps_its_claims(self, make_spool, other_process):
        """A tracker in another live process with a fresh heartbeat keeps what it claimed."""
        busy = make_spool(owner=f"{other_process.pid}.{NAMESPACE}.0123456789ab")
        busy.put(PLAYFAB, [record("sending")], due=NOW)
        busy.claim_due(PLAYFAB, now=NOW, max_records=100)

        assert 0 == make_spool().reclaim()
        assert 1 == len(listing(busy, PLAYFAB, "claimed"))

    def test_a_stale_heartbeat_means_the_pid_was_reused(self, make_spool, other_process):
        """A live pid whose owner has not beaten for STALE_OWNER_SECONDS is another process now."""
        owner = f"{other_process.pid}.{NAMESPACE}.0123456789ab"
        stale = make_spool(owner=owner)
        stale.put(PLAYFAB, [record("orphan")], due=NOW)
        stale.claim_due(PLAYFAB, now=NOW, max_records=100)
        long_ago = time.time() - STALE_OWNER_SECONDS - 10
        heartbeat = os.path.join(stale.directory, "owners", owner)
        with open(heartbeat, "w") as file:  # what beat() wrote that long ago
            file.write(f"{BOOT_ID} {time.monotonic() - STALE_OWNER_SECONDS - 10:.3f}\n")
        os.utime(heartbeat, (long_ago, long_ago))

        assert 1 == make_spool().reclaim()

    def test_reclaim_clears_only_dead_owners_temporary_files_and_heartbeats(self, make_spool):
        """A dead owner's half-written files and heartbeat go; a live owner's stay."""
        dead_owner = f"{finished_pid()}.{NAMESPACE}.0123456789ab"
        make_spool(owner=dead_owner)
        live = make_spool()
        tmp = os.path.join(live.directory, "tmp")
        for owner in (dead_owner, live.owner):
            with open(os.path.join(tmp, f"{owner}~{queue_name()}"), "w") as file:
                file.write('{"id": "half')

        live.reclaim()

        assert [f"{live.owner}~{queue_name()}"] == listing(live, "tmp")
        assert dead_owner not in listing(live, "owners")
        assert live.owner in listing(live, "owners")


class TestQuarantine:
    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("{not json\n", id="bad-json"),
            pytest.param("", id="empty-file"),
            pytest.param("\n\n", id="blank-lines"),
            pytest.param("[1, 2]\n", id="json-not-a-record"),
            pytest.param('{"id": "r1", "kind": "event"}\n', id="record-without-data"),
            pytest.param('{"id": "r1", "data": {}, "attempts": "many"}\n', id="bad-attempts"),
            pytest.param(Record("ok", "event", {}).to_line() + '{"id": "torn", "da', id="torn-last-line"),
            pytest.param(b"\xff\xfe".decode("latin-1"), id="not-utf8"),
        ],
    )
    def test_an_unreadable_file_is_quarantined(self, spool, text):
        """A file that does not hold spool records is moved to quarantine/ and counted; the rest go on."""
        spool.put(PLAYFAB, [record("good")], due=NOW - 10)
        bad = queue_name(due=NOW - 5)
        folder = os.path.join(spool.directory, PLAYFAB, "queue")
        with open(os.path.join(folder, bad), "w", encoding="latin-1") as file:
            file.write(text)

        claimed = ids(spool.claim_due(PLAYFAB, now=NOW, max_records=100))

        assert (["good"], 1) == (claimed, spool.quarantined)
        [quarantined] = listing(spool, "quarantine")
        assert quarantined.endswith(bad)
        assert 1 == len(listing(spool, PLAYFAB, "claimed"))

    @pytest.mark.parametrize(
        "name",
        [
            pytest.param("garbage.jsonl", id="no-fields"),
            pytest.param(f"{int(NOW * 1000)}-1-x.jsonl", id="three-fields"),
            pytest.param(queue_name().replace(".jsonl", ".txt"), id="wrong-suffix"),
            pytest.param("soon-1-1700000000000-0123456789ab.jsonl", id="due-not-a-number"),
            pytest.param(f"{int(NOW * 1000)}-one-1700000000000-0123456789ab.jsonl", id="count-not-a-number"),
        ],
    )
    def test_a_malformed_name_is_quarantined(self, spool, name):
        """A queue file whose name is not ``<due>-<count>-<created>-<id>.jsonl`` is quarantined."""
        spool.put(PLAYFAB, [record("good")], due=NOW - 10)
        write_raw(spool, PLAYFAB, name, Record("hidden", "event", {}).to_line())

        claimed = ids(spool.claim_due(PLAYFAB, now=NOW, max_records=100))

        assert (["good"], 1, []) == (claimed, spool.quarantined, listing(spool, PLAYFAB, "queue"))
        assert [name] == [entry.split("~", 1)[1] for entry in listing(spool, "quarantine")]

    def test_quarantine_counts_every_file(self, spool):
        """Each unreadable file adds one to ``quarantined``."""
        write_raw(spool, PLAYFAB, queue_name(due=NOW - 3, token="aaaaaaaaaaaa"), "")
        write_raw(spool, PLAYFAB, queue_name(due=NOW - 2, token="bbbbbbbbbbbb"), "{")
        write_raw(spool, PLAYFAB, "garbage.jsonl", "")

        assert [] == spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        assert (3, 3) == (spool.quarantined, len(listing(spool, "quarantine")))

    def test_an_unreadable_checkpoint_is_quarantined(self, spool):
        """A session checkpoint that is not JSON is quarantined, not recovered, not fatal."""
        with open(os.path.join(spool.directory, "sessions", "s1.json"), "w") as file:
            file.write('{"owner": ')

        assert [] == list(spool.orphaned_checkpoints())
        assert (1, [], 1) == (spool.quarantined, listing(spool, "sessions"), len(listing(spool, "quarantine")))

    def test_a_checkpoint_with_a_non_text_owner_is_quarantined(self, spool):
        """A checkpoint whose ``owner`` is not a string is quarantined like any unreadable checkpoint."""
        with open(os.path.join(spool.directory, "sessions", "s1.json"), "w") as file:
            json.dump({"session_id": "s1", "owner": None}, file)

        assert [] == list(spool.orphaned_checkpoints())
        assert 1 == spool.quarantined


class TestPending:
    def test_pending_counts_queued_and_claimed_records(self, spool):
        """Records waiting and records being sent are both pending; settled ones are not."""
        spool.put(PLAYFAB, [record("a"), record("b"), record("c")], due=NOW - 1)
        spool.put(PLAYFAB, [record("d"), record("e")], due=NOW + 60)
        assert 5 == spool.pending()

        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        assert 5 == spool.pending()

        spool.settle(claim, retry=[], dead=[])
        assert 2 == spool.pending()

    def test_pending_reads_counts_from_file_names(self, spool):
        """The count comes from the name: a file is not opened to count it."""
        write_raw(spool, PLAYFAB, queue_name(count=4), "not even JSON, " * 8)

        assert 4 == spool.pending()

    def test_pending_per_destination(self, spool):
        """pending(destination) counts one destination; pending() all of them."""
        spool.put(PLAYFAB, [record("a"), record("b")], due=NOW)
        spool.put(PLAYCAMP, [record("s")], due=NOW)

        assert (2, 1, 3, 0) == (spool.pending(PLAYFAB), spool.pending(PLAYCAMP), spool.pending(), spool.pending("nowhere"))

    def test_an_empty_spool_has_nothing_pending(self, spool):
        """A new spool has nothing pending."""
        assert 0 == spool.pending()


class TestLimits:
    def test_oldest_accepted_event_is_dropped_first(self, make_spool, drops):
        """Over the bound, the event accepted first goes, whatever its due time; sessions stay."""
        spool = make_spool(max_records=2)
        spool.put(PLAYFAB, [record("accepted-first", created=NOW - 300)], due=NOW + 500)
        spool.put(PLAYFAB, [record("due-first", created=NOW - 100)], due=NOW - 1000)
        spool.put(PLAYCAMP, [record("old-session", created=NOW - 1000)], due=NOW)

        spool.enforce_limits(expendable=[PLAYFAB])

        assert (["due-first"], ["old-session"]) == (queued_ids(spool, PLAYFAB), queued_ids(spool, PLAYCAMP))
        assert [("spool_full", 1)] == [(reason, count) for reason, _, count in drops]

    def test_events_go_before_sessions(self, make_spool, drops):
        """Events are dropped oldest first; only when none is left do sessions go, oldest first."""
        spool = make_spool()
        spool.put(PLAYFAB, [record("event-1", created=NOW - 20)], due=NOW)
        spool.put(PLAYFAB, [record("event-2", created=NOW - 10)], due=NOW)
        spool.put(PLAYCAMP, [record("session-1", created=NOW - 2000)], due=NOW + 10)
        spool.put(PLAYCAMP, [record("session-2", created=NOW - 1000)], due=NOW - 10)
        remaining = []

        for bound in (3, 2, 1):
            spool.max_records = bound
            spool.enforce_limits(expendable=[PLAYFAB])
            remaining.append(queued_ids(spool, PLAYFAB) + queued_ids(spool, PLAYCAMP))

        assert [
            ["event-2", "session-1", "session-2"],
            ["session-1", "session-2"],
            ["session-2"],
        ] == remaining
        assert [("spool_full", 1)] * 3 == [(reason, count) for reason, _, count in drops]

    def test_a_dropped_file_counts_all_its_records(self, make_spool, drops):
        """Dropping a file of three records counts three."""
        spool = make_spool(max_records=2)
        spool.put(PLAYFAB, [record("a", created=NOW - 3), record("b", created=NOW - 2), record("c", created=NOW - 1)], due=NOW)
        spool.put(PLAYFAB, [record("d")], due=NOW)

        spool.enforce_limits(expendable=[PLAYFAB])

        assert ["d"] == queued_ids(spool, PLAYFAB)
        assert [("spool_full", 3)] == [(reason, count) for reason, _, count in drops]

    def test_the_byte_bound_drops_oldest_first(self, make_spool, drops):
        """Past max_bytes the oldest-accepted files go until the spool fits."""
        spool = make_spool()
        for n in range(3):
            spool.put(PLAYFAB, [record(f"e{n}", created=NOW - 10 + n, padding="x" * 1000)], due=NOW)
        sizes = [os.path.getsize(os.path.join(spool.directory, PLAYFAB, "queue", name)) for name in listing(spool, PLAYFAB, "queue")]
        spool.max_bytes = sum(sizes) - 1

        spool.enforce_limits(expendable=[PLAYFAB])

        assert ["e1", "e2"] == queued_ids(spool, PLAYFAB)
        assert [("spool_full", 1)] == [(reason, count) for reason, _, count in drops]

    def test_within_bounds_nothing_is_dropped(self, make_spool, drops):
        """At the bound exactly, nothing goes."""
        spool = make_spool(max_records=2)
        spool.put(PLAYFAB, [record("a")], due=NOW)
        spool.put(PLAYCAMP, [record("s")], due=NOW)

        spool.enforce_limits(expendable=[PLAYFAB])

        assert ([], 2) == (drops, spool.pending())

    def test_without_expendable_destinations_the_oldest_goes(self, make_spool, drops):
        """With no destination marked expendable, the oldest-accepted file goes, session or event."""
        spool = make_spool(max_records=1, expendable=[])
        spool.put(PLAYFAB, [record("event", created=NOW - 10)], due=NOW)
        spool.put(PLAYCAMP, [record("session", created=NOW - 20)], due=NOW)

        spool.enforce_limits(expendable=[])

        assert ([], ["event"]) == (queued_ids(spool, PLAYCAMP), queued_ids(spool, PLAYFAB))

    def test_the_drop_detail_names_the_file(self, make_spool, drops):
        """The drop callback says which file went, for the log."""
        spool = make_spool(max_records=0)
        spool.put(PLAYFAB, [record("a")], due=NOW)  # over the bound as it is written: dropped at once

        [(reason, detail, count)] = drops
        assert ("spool_full", 1) == (reason, count)
        assert re.search(r"[0-9]{13}-1-[0-9]{13}-[0-9a-f]{12}\.jsonl", detail)


class TestCheckpoints:
    STATE = {"session_id": "s1", "options": {"user_id": "player-1"}, "elapsed_seconds": 12.5}

    def test_checkpoint_saves_the_state_with_its_owner(self, spool):
        """A checkpoint is the session's state plus the tracker that owns it."""
        spool.checkpoint("s1", self.STATE)

        with open(os.path.join(spool.directory, "sessions", "s1.json"), encoding="utf-8") as file:
            assert dict(self.STATE, owner=spool.owner) == json.load(file)

    def test_a_newer_checkpoint_replaces_the_older(self, spool):
        """Only the latest state of a session is kept."""
        spool.checkpoint("s1", dict(self.STATE, elapsed_seconds=1.0))
        spool.checkpoint("s1", dict(self.STATE, elapsed_seconds=2.0))

        with open(os.path.join(spool.directory, "sessions", "s1.json"), encoding="utf-8") as file:
            assert 2.0 == json.load(file)["elapsed_seconds"]
        assert ["s1.json"] == listing(spool, "sessions")

    def test_forget_checkpoint_removes_it(self, spool):
        """A closed session's checkpoint is removed; forgetting an unknown one is harmless."""
        spool.checkpoint("s1", self.STATE)

        spool.forget_checkpoint("s1")
        spool.forget_checkpoint("never-checkpointed")

        assert [] == listing(spool, "sessions")

    def test_a_live_owners_checkpoints_are_left_alone(self, make_spool):
        """Neither the owner nor another live tracker recovers a live tracker's session."""
        owner, other = make_spool(), make_spool()
        owner.checkpoint("s1", self.STATE)

        assert ([], []) == (list(owner.orphaned_checkpoints()), list(other.orphaned_checkpoints()))
        assert ["s1.json"] == listing(owner, "sessions")

    def test_a_retired_owners_checkpoint_is_yielded_once(self, make_spool, owners):
        """A closed tracker's checkpoint is recovered once, then gone."""
        owner = owners()
        make_spool(owner=owner).checkpoint("s1", self.STATE)
        retire_owner(owner)
        live = make_spool()

        assert [dict(self.STATE, owner=owner)] == list(live.orphaned_checkpoints())
        assert [] == list(live.orphaned_checkpoints())
        assert [] == listing(live, "sessions")

    def test_a_dead_process_checkpoint_is_yielded(self, make_spool):
        """A session left open by a process that died is recovered."""
        dead_owner = f"{finished_pid()}.{NAMESPACE}.0123456789ab"
        make_spool(owner=dead_owner).checkpoint("s1", self.STATE)

        assert ["s1"] == [state["session_id"] for state in make_spool().orphaned_checkpoints()]

    def test_only_dead_owners_checkpoints_are_yielded(self, make_spool, owners):
        """Of two sessions, the dead owner's is recovered and the live owner's stays."""
        dead_owner = owners()
        make_spool(owner=dead_owner).checkpoint("dead-session", dict(self.STATE, session_id="dead-session"))
        retire_owner(dead_owner)
        alive = make_spool()
        alive.checkpoint("live-session", dict(self.STATE, session_id="live-session"))

        assert ["dead-session"] == [state["session_id"] for state in make_spool().orphaned_checkpoints()]
        assert ["live-session.json"] == listing(alive, "sessions")

    def test_interleaved_recoveries_take_each_checkpoint_once(self, make_spool, owners):
        """Two trackers recovering at once never both get the same session."""
        dead_owner = owners()
        dead = make_spool(owner=dead_owner)
        for n in range(3):
            dead.checkpoint(f"s{n}", dict(self.STATE, session_id=f"s{n}"))
        retire_owner(dead_owner)
        first, second = make_spool().orphaned_checkpoints(), make_spool().orphaned_checkpoints()

        taken = [next(first)["session_id"]]
        taken += [state["session_id"] for state in second]
        taken += [state["session_id"] for state in first]

        assert ["s0", "s1", "s2"] == sorted(taken)

    def test_racing_threads_recover_each_checkpoint_once(self, make_spool, owners):
        """Six trackers recovering on threads at once take each orphaned session exactly once."""
        dead_owner = owners()
        dead = make_spool(owner=dead_owner)
        expected = [f"s{n:02d}" for n in range(60)]
        for session_id in expected:
            dead.checkpoint(session_id, dict(self.STATE, session_id=session_id))
        retire_owner(dead_owner)
        spools = [make_spool() for _ in range(6)]
        start = threading.Barrier(len(spools))

        def recover(spool):
            start.wait()
            return [state["session_id"] for state in spool.orphaned_checkpoints()]

        with ThreadPoolExecutor(len(spools)) as pool:
            results = [future.result() for future in [pool.submit(recover, spool) for spool in spools]]

        assert expected == sorted(session_id for result in results for session_id in result)
        assert [] == listing(dead, "sessions")


class TestAtomicWrites:
    def test_no_temporary_files_are_left(self, spool):
        """After puts, a settle and checkpoints, tmp/ is empty."""
        spool.put(PLAYFAB, [record("a"), record("b")], due=NOW)
        [claim] = spool.claim_due(PLAYFAB, now=NOW, max_records=100)
        spool.settle(claim, retry=[(claim.records[0], NOW + 1)], dead=[claim.records[1]])
        spool.checkpoint("s1", {"session_id": "s1"})

        assert [] == listing(spool, "tmp")

    def test_queue_files_are_complete_json_lines(self, spool):
        """Every queue file is whole: each line a record, ending in a newline."""
        for n in range(5):
            spool.put(PLAYFAB, [record(f"r{n}-{k}", text="é\n\"quoted\"") for k in range(n + 1)], due=NOW + n)

        for name in listing(spool, PLAYFAB, "queue"):
            with open(os.path.join(spool.directory, PLAYFAB, "queue", name), encoding="utf-8") as file:
                text = file.read()
            assert text.endswith("\n")
            assert int(name.split("-")[1]) == len([Record.from_line(line) for line in text.splitlines()])

    def test_a_reader_never_sees_a_partial_file(self, spool):
        """While one thread writes, another reading queue/ only ever finds complete files."""
        done = threading.Event()
        payload = {"padding": "x" * 20_000}

        def write():
            try:
                for n in range(100):
                    spool.put(PLAYFAB, [record(f"r{n}-{k}", **payload) for k in range(3)], due=NOW + n)
            finally:
                done.set()

        seen = {}
        with ThreadPoolExecutor(1) as pool:
            writing = pool.submit(write)
            folder = os.path.join(spool.directory, PLAYFAB, "queue")
            while True:
                finished = done.is_set()  # one more look after the writer ends, to see its last files
                for name in listing(spool, PLAYFAB, "queue"):
                    seen[name] = len(read_records(os.path.join(folder, name)))
                if finished:
                    break
            writing.result()

        assert [3] * 100 == list(seen.values())

    def test_a_failed_write_leaves_nothing_on_disk_and_holds_the_records(self, make_spool, owners, monkeypatch):
        """A write that fails before its rename (disk full) leaves no file in queue/ or tmp/: its
        records are held in memory, pending, until the disk takes them."""
        owner = owners()
        crashing = make_spool(owner=owner)

        def disk_full(descriptor):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", disk_full)
        written = crashing.put(PLAYFAB, [record("held")], due=NOW)
        monkeypatch.undo()

        assert (False, [], [], 1) == (written, listing(crashing, PLAYFAB, "queue"), listing(crashing, "tmp"), crashing.pending())
        assert "No space left on device" in crashing.problem
        retire_owner(owner)
        make_spool().reclaim()
        assert [] == listing(crashing, "tmp")
