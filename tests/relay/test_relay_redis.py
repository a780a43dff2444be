"""The relay's Redis backend: a queue the sender forwards from, and a rate limit shared by instances.

Against a real ``redis-server`` started for each test (``redis_server.py``); skipped, saying why,
where there is none. Times of due records are injected (``now``); what Redis times itself (how long
an entry sat idle) is waited for with bounded polling on a condition, never a sleep.
"""

import logging
import subprocess
import sys
import time
import uuid

import pytest

import playhooks
from playhooks._sender import Sender
from playhooks._spool import Record
from playhooks._stats import Counters
from playhooks._transport import Transport
from playhooks.emulator import Emulator
from playhooks.relay._redis import RedisQueue, RedisRateLimiter, StoreFull, StoreUnavailable, connect
from playhooks.testing import ManualClock

from helpers import FAST, PLAYER, play, sinks, wait_for
from redis_server import redis_server_fixture

redis_server = redis_server_fixture()

NOW = 1_800_000_000.0  # the injected wall clock's time: due times are read from it, not from Redis
RECLAIM = 0.3  # seconds idle after which an entry is taken for a dead instance's
WAIT = 20.0  # the most any condition is waited for


@pytest.fixture
def clients(redis_server):
    """Redis clients on the test's server, each a connection pool of its own (as two instances)."""
    made = []

    def make():
        client = connect(redis_server.url)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def queues(clients):
    """RedisQueues sharing one prefix, each on its own client, closed after the test."""
    made = []
    prefix = f"test-{uuid.uuid4().hex[:8]}"

    def make(consumer=None, **options):
        options.setdefault("reclaim_after", RECLAIM)
        options.setdefault("now", lambda: NOW)
        queue = RedisQueue(clients(), prefix=prefix, consumer=consumer, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


@pytest.fixture
def queue(queues):
    return queues("first")


def records(count, kind="event", first=0, created=NOW):
    return [Record(f"r{number}", kind, {"n": number}, created=created) for number in range(first, first + count)]


def ids(claims):
    return [record.id for claim in claims for record in claim.records]


class TestRoundTrip:
    def test_records_put_are_claimed_in_order_and_gone_once_sent(self, queue):
        """put, claim_due, mark_sent each, settle with nothing left: nothing pending."""
        queue.put("playfab", records(3))

        claims = queue.claim_due("playfab", NOW, 10)
        for record in claims[0].records:
            queue.mark_sent(claims[0], record)
        queue.settle(claims[0], [], [])

        assert ["r0", "r1", "r2"] == ids(claims)
        assert 0 == queue.pending("playfab")
        assert [] == queue.claim_due("playfab", NOW + 3600, 10)

    def test_records_keep_what_they_carry(self, queue):
        """A record comes back with its data, attempts, created time and error."""
        stored = Record("x", "session", {"sessionId": "s", "nested": {"é": [1, 2.5]}}, attempts=2, created=NOW - 5, error="500")
        queue.put("playcamp", [stored])

        assert [stored] == list(queue.claim_due("playcamp", NOW, 10)[0].records)

    def test_claim_takes_at_most_max_records(self, queue):
        """The rest stay for the next claim."""
        queue.put("playfab", records(5))

        assert ["r0", "r1"] == ids(queue.claim_due("playfab", NOW, 2))
        assert ["r2", "r3", "r4"] == ids(queue.claim_due("playfab", NOW, 10))

    def test_pending_counts_waiting_and_in_flight_records_per_destination(self, queue):
        """What the sender shows in stats: every record not yet delivered, claimed or not."""
        queue.put("playfab", records(3))
        queue.put("playcamp", records(2, "session"))
        claim = queue.claim_due("playfab", NOW, 1)[0]
        queue.mark_sent(claim, claim.records[0])

        assert (2, 2, 4) == (queue.pending("playfab"), queue.pending("playcamp"), queue.pending())
        assert 4 == queue.pending_now()

    def test_next_due_is_now_while_a_record_waits_unclaimed(self, queue):
        """And None once every record is claimed: nothing for the lane to wake for."""
        queue.put("playfab", records(1))
        due_before = queue.next_due("playfab")
        queue.claim_due("playfab", NOW, 10)

        assert (NOW, None) == (due_before, queue.next_due("playfab"))

    def test_oldest_age_is_the_time_since_the_oldest_record_was_created(self, queue):
        queue.put("playfab", records(1, created=NOW - 30) + records(1, first=1, created=NOW - 10))

        assert (30.0, None) == (queue.oldest_age("playfab"), queue.oldest_age("playcamp"))

    def test_acknowledged_records_survive_a_redis_restart(self, redis_server, queue):
        """put returns once Redis has them; with its append-only log they outlive its process."""
        queue.put("playfab", records(2))
        redis_server.stop()
        redis_server.start()

        assert ["r0", "r1"] == ids(wait_for(lambda: queue.claim_due("playfab", NOW, 10), WAIT))


class TestPutRefuses:
    def test_past_max_records_nothing_is_stored(self, queues):
        """A request's records go in whole or not at all: StoreFull, a StoreUnavailable."""
        queue = queues(max_records=4)
        queue.put("playfab", records(3))

        with pytest.raises(StoreFull) as refused:
            queue.put("playfab", records(2, first=3))

        assert isinstance(refused.value, StoreUnavailable)
        assert 3 == queue.pending("playfab")
        assert ["r0", "r1", "r2"] == ids(queue.claim_due("playfab", NOW, 10))

    def test_records_retrying_count_towards_max_records(self, queues):
        queue = queues(max_records=2)
        queue.put("playfab", records(2))
        claim = queue.claim_due("playfab", NOW, 10)[0]
        queue.settle(claim, [(record, NOW + 60) for record in claim.records], [])

        with pytest.raises(StoreFull):
            queue.put("playfab", records(1, first=2))

    def test_max_records_is_per_destination(self, queues):
        queue = queues(max_records=2)
        queue.put("playfab", records(2))
        queue.put("playcamp", records(2, "session"))

        assert 4 == queue.pending()

    def test_a_stopped_redis_raises_store_unavailable(self, redis_server, queue):
        redis_server.stop()

        with pytest.raises(StoreUnavailable) as refused:
            queue.put("playfab", records(1))

        assert refused.value.reason.startswith("redis: ")
        assert "ConnectionError" in refused.value.reason


class TestSettle:
    def test_a_retry_is_not_claimed_before_it_is_due_then_is(self, queue):
        """It waits in the delayed set with its new attempts and error, then comes back whole."""
        queue.put("playfab", records(2))
        claim = queue.claim_due("playfab", NOW, 10)[0]
        queue.mark_sent(claim, claim.records[0])
        retried = claim.records[1]
        retried.attempts, retried.error = 1, "HTTP 503"
        queue.settle(claim, [(retried, NOW + 30)], [])

        early = queue.claim_due("playfab", NOW + 29.9, 10)
        due = queue.next_due("playfab")
        later = queue.claim_due("playfab", NOW + 30, 10)

        assert ([], NOW + 30) == (early, due)
        assert [Record("r1", "event", {"n": 1}, attempts=1, created=NOW, error="HTTP 503")] == list(later[0].records)

    def test_a_retry_due_hours_ahead_is_due_now(self, queue):
        """As in the spool: no retry waits two hours, so the wall clock was set back."""
        queue.put("playfab", records(1))
        claim = queue.claim_due("playfab", NOW, 10)[0]
        queue.settle(claim, [(claim.records[0], NOW + 3 * 3600)], [])

        assert ["r0"] == ids(queue.claim_due("playfab", NOW, 10))

    def test_dead_letters_go_to_the_dead_stream_and_are_not_sent_again(self, queue):
        queue.put("playfab", records(2))
        claim = queue.claim_due("playfab", NOW, 10)[0]
        queue.mark_sent(claim, claim.records[0])
        claim.records[1].error = "HTTP 400: bad body"
        queue.settle(claim, [], [claim.records[1]])

        dead = queue._client.xrange(f"{queue.prefix}:playfab:dead")

        assert ["HTTP 400: bad body"] == [Record.from_line(fields[b"r"].decode()).error for _, fields in dead]
        assert 0 == queue.pending("playfab")
        assert [] == queue.claim_due("playfab", NOW + 3600, 10)

    def test_records_not_marked_sent_and_not_retried_are_taken_as_delivered(self, queue):
        """settle's contract: what is neither retried nor dead was delivered."""
        queue.put("playfab", records(2))
        claim = queue.claim_due("playfab", NOW, 10)[0]
        queue.settle(claim, [], [])

        assert 0 == queue.pending("playfab")

    def test_release_puts_records_back_for_any_consumer(self, queues):
        """Released, not left pending: another instance claims them at once, not after reclaim_after."""
        first, second = queues("first", reclaim_after=3600), queues("second", reclaim_after=3600)
        first.put("playfab", records(3))
        claim = first.claim_due("playfab", NOW, 10)[0]
        first.mark_sent(claim, claim.records[0])
        first.release(claim)

        assert ["r1", "r2"] == ids(second.claim_due("playfab", NOW, 10))

    def test_settling_twice_does_nothing_more(self, queue):
        queue.put("playfab", records(1))
        claim = queue.claim_due("playfab", NOW, 10)[0]
        queue.settle(claim, [(claim.records[0], NOW)], [])
        queue.settle(claim, [], [claim.records[0]])
        queue.release(claim)

        assert ["r0"] == ids(queue.claim_due("playfab", NOW, 10))


class TestReclaim:
    def test_a_dead_consumer_s_records_are_reclaimed_without_what_it_delivered(self, queues):
        """A consumer that claimed, delivered one, then stopped keeping its entries fresh (a process
        gone): another takes the rest over once they sat idle past reclaim_after."""
        dead, alive = queues("dead"), queues("alive")
        dead.put("playfab", records(3))
        claim = dead.claim_due("playfab", NOW, 10)[0]
        dead.mark_sent(claim, claim.records[0])
        dead.close()  # its keeper stops: as if the process were gone

        assert ["r1", "r2"] == ids(wait_for(lambda: alive.claim_due("playfab", NOW, 10), WAIT))

    def test_a_live_consumer_s_records_are_never_reclaimed(self, queues):
        """Its keeper touches them every reclaim_after / 3: asked again and again for twice
        reclaim_after and more, the other instance gets nothing."""
        live, other = queues("live", reclaim_after=0.6), queues("other", reclaim_after=0.6)
        live.put("playfab", records(3))
        live.claim_due("playfab", NOW, 10)
        taken = []

        def taken_or_long_enough():
            taken.extend(other.claim_due("playfab", NOW, 10))
            return taken or live.refreshes >= 6

        assert wait_for(taken_or_long_enough, WAIT)
        assert ([], 3) == (taken, other.pending("playfab"))

    def test_a_consumer_taken_for_dead_settles_nothing_taken_over(self, queues):
        """A slow instance's late settle neither retries nor buries what another now sends: each
        record stays once in Redis."""
        slow, other = queues("slow"), queues("other")
        slow.put("playfab", records(2))
        claim = slow.claim_due("playfab", NOW, 10)[0]
        slow.close()
        taken = []  # each entry is taken over once idle long enough: r0 can come a round before r1
        wait_for(lambda: taken.extend(other.claim_due("playfab", NOW, 10)) or len(ids(taken)) >= 2, WAIT)
        slow.settle(claim, [(claim.records[0], NOW)], [claim.records[1]])

        assert ["r0", "r1"] == sorted(ids(taken))
        assert (2, []) == (other.pending("playfab"), other._client.xrange(f"{other.prefix}:playfab:dead"))


class TestRedisDown:
    def test_the_sender_s_calls_return_quietly_and_say_so_once(self, redis_server, queue, caplog):
        """Never raised into a lane: claim_due gives [], the others nothing; one warning, on
        playhooks.relay."""
        queue.put("playfab", records(2))
        claim = queue.claim_due("playfab", NOW, 10)[0]
        redis_server.stop()

        with caplog.at_level(logging.WARNING, logger="playhooks.relay"):
            claimed = queue.claim_due("playfab", NOW, 10)
            queue.mark_sent(claim, claim.records[0])
            queue.settle(claim, [(claim.records[1], NOW)], [])
            answers = (queue.next_due("playfab"), queue.pending("playfab"), queue.pending_now(), queue.oldest_age("playfab"))
            queue.heartbeat()

        assert [] == claimed
        assert (None, 2, 2, None) == answers
        assert 1 == len([record for record in caplog.records if record.name == "playhooks.relay"])

    def test_records_held_when_redis_failed_are_reclaimed_once_it_answers(self, redis_server, queues):
        """A settle lost to an outage leaves the entries pending: taken over once idle, not lost."""
        queue = queues("first")
        queue.put("playfab", records(2))
        claim = queue.claim_due("playfab", NOW, 10)[0]
        redis_server.stop()
        queue.settle(claim, [(record, NOW) for record in claim.records], [])
        redis_server.start()

        assert ["r0", "r1"] == ids(wait_for(lambda: queue.claim_due("playfab", NOW, 10), WAIT))

    def test_problem_says_why_without_the_password(self, redis_server, clients):
        clients().config_set("requirepass", "hunter2-secret")
        client = connect(f"redis://:hunter2-secret@127.0.0.1:{redis_server.port}/0")
        try:
            queue = RedisQueue(client, prefix="problem")
            healthy = queue.problem()
            redis_server.stop()
            problem = queue.problem()
        finally:
            client.close()

        assert healthy is None
        assert problem.startswith("redis: ") and "hunter2" not in problem


class TestRateLimiter:
    def test_two_instances_share_one_limit(self, clients):
        """Two limiters on two clients, as two relay instances: the limit counts both."""
        first, second = (RedisRateLimiter(clients(), limit=3, window=60.0, prefix="rl-shared") for _ in range(2))

        answers = [first.check("key"), second.check("key"), first.check("key"), second.check("key"), first.check("key")]

        assert [None, None, None] == answers[:3]
        assert all(isinstance(wait, int) and 1 <= wait <= 60 for wait in answers[3:]), answers

    def test_keys_are_counted_apart(self, clients):
        limiter = RedisRateLimiter(clients(), limit=1, window=60.0, prefix="rl-apart")

        assert [None, None, 60] == [limiter.check("a"), limiter.check("b"), limiter.check("a")]

    def test_a_short_window_still_asks_for_a_whole_second(self, clients):
        """Retry-After is an integer: never 0, which would invite a retry at once."""
        limiter = RedisRateLimiter(clients(), limit=1, window=0.2, prefix="rl-short")
        limiter.check("key")

        assert 1 == limiter.check("key")

    def test_a_new_window_allows_again(self, clients):
        limiter = RedisRateLimiter(clients(), limit=1, window=0.05, prefix="rl-window")
        limiter.check("key")

        assert wait_for(lambda: limiter.check("key") is None, WAIT)

    def test_a_stopped_redis_lets_requests_through_and_says_so_once_without_the_key(self, redis_server, clients, caplog):
        limiter = RedisRateLimiter(clients(), limit=1, prefix="rl-down")
        redis_server.stop()

        with caplog.at_level(logging.WARNING, logger="playhooks.relay"):
            answers = [limiter.check("hashed-key-value") for _ in range(3)]

        assert [None, None, None] == answers
        assert 1 == len(caplog.records)
        assert "hashed-key-value" not in caplog.text

    @pytest.mark.parametrize("limit, window", [(0, 1.0), (1.5, 1.0), (1, 0.0), (1, float("nan"))])
    def test_a_limit_or_window_that_cannot_apply_is_refused(self, clients, limit, window):
        with pytest.raises(ValueError):
            RedisRateLimiter(clients(), limit=limit, window=window)


class TestConnect:
    def test_a_url_that_is_not_redis_is_a_configuration_error_without_the_url(self):
        with pytest.raises(playhooks.ConfigurationError) as refused:
            connect("http://user:hunter2@example.invalid/")

        assert "hunter2" not in str(refused.value)

    def test_without_the_redis_package_it_names_the_extra(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError

        with pytest.raises(playhooks.ConfigurationError, match="relay-redis"):
            connect("redis://127.0.0.1:6379/0")

    def test_the_module_imports_without_redis(self):
        """Only the relay's Redis option needs the package: importing the module does not."""
        code = "import sys; sys.modules['redis'] = None; import playhooks.relay._redis"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

        assert 0 == result.returncode, result.stderr


class TestSender:
    """The sender forwards from Redis as from a spool: real sinks, a real emulator, real Redis."""

    def test_every_record_arrives_once_through_failures(self, queues):
        count = 60
        made = playhooks.MemorySink()
        tracker = playhooks.Tracker(sinks=[made], clock=ManualClock())
        for number in range(count):
            play(tracker, user=f"u{number}", events=())
            tracker.on_character_event("tick", body={"n": number}, **PLAYER)
        tracker.close(timeout=10)
        queue = queues("sender", reclaim_after=5.0, now=time.time)
        with Emulator() as emulator:
            playcamp, playfab = sinks(emulator)
            sessions = [Record(data["sessionId"], "session", playcamp.prepare(data), created=time.time()) for data in made.sessions]
            queue.put("playcamp", sessions)
            for data in made.events:  # one request each, as the relay stores them
                queue.put("playfab", [Record(uuid.uuid4().hex, "event", playfab.prepare(data), created=time.time())])
            emulator.fail_next(4, status=503)  # whole requests fail: their records retry through the delayed set
            sender = Sender(queue, [playcamp, playfab], lambda: Transport(5.0, 5.0, 4), Counters(), FAST, max_in_flight=4)
            try:
                arrived = emulator.wait_until(lambda e: len(e.sessions) == count and len(e.events) == count, WAIT)
                settled = wait_for(lambda: queue.pending() == 0, WAIT)
            finally:
                sender.stop(timeout=10)
            numbers = sorted(event["Body"]["n"] for event in emulator.events)
            users = sorted(session["userId"] for session in emulator.sessions)
            counters = emulator.counters

        assert arrived and settled
        assert list(range(count)) == numbers
        assert sorted(f"u{number}" for number in range(count)) == users
        assert (0, 4) == (counters["duplicates"], counters["faults"])
