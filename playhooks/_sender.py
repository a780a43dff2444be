"""The sender: from the spool to the services, one lane per service.

Each delivery sink has a lane of its own, so one service's outage, hang or rate limit never
delays the other's records. A lane is a thread that claims its sink's due records from the spool,
cuts them into requests (one event each for PlayFab, which has no batch call; up to 100 sessions
for PlayCamp's bulk endpoint) and hands them to request threads, which share the lane's
kept-alive connections. A lane that keeps up (it had nothing to send a moment ago) sends one
request at a time: more threads would only vie with the game's thread for the interpreter lock.
A lane that falls behind keeps as many requests in flight as pay (see ``_Concurrency``), up to
``max_in_flight``: all of them far from a service, one or two near it. When every request of a
claim has its outcome, the lane settles it: delivered records are gone, retried ones go back to
the queue at a later time, rejected ones are dead-lettered and counted.

Within a lane:

- Requests start in the order their records are due; with several in flight, they may finish
  (and arrive) in another order. Each event carries its own timestamp, and PlayCamp keys sessions
  by ``sessionId``, so neither service depends on arrival order.
- A request that fails as a whole (no answer, 5xx, 429) holds the lane back: the requests not yet
  started wait with its records, without using up an attempt, and the lane pauses: until the time
  the service asked for (``Retry-After``, ``retryAfterSeconds``), or else for a first back-off.
- Each record keeps its own attempts and back-off.
- While the worker has a burst of hook calls to spool, no new request starts: putting accepted
  payloads on disk comes first, and the two share one interpreter lock.
- Stopping, no new request starts; requests in flight end (at worst by their read timeout) on
  their own threads, and the lane settles them before the tracker's claims may be taken back.
"""

import collections
import random
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import attrs

from ._retry import DELIVERED, MAX_RETRY_AFTER, NOT_SENT, REJECTED, RETRY, Outcome, RetryPolicy
from ._services import DeliverySink
from ._spool import HEARTBEAT_SECONDS, Claim, Record, Spool
from ._stats import ERROR, GAVE_UP, Counters

_IDLE_WAIT = 1.0  # seconds between looks at the spool when nothing is due (another process may add)
_SENDER_IDLE = 30.0  # seconds a request thread waits for work before it ends
_KEEPING_UP = 0.25  # a lane that found nothing to send this recently sends one request at a time
_WINDOW = 0.25  # seconds over which a lane's rate of requests is judged
_PAUSE_WINDOWS = 8  # after a trial that did not pay, windows before the next
_STUCK = 1.0  # seconds after which a request in flight no longer holds the others back
_YIELD_WAIT = 0.02  # seconds a request waits, at most, while the worker spools a burst


class Sender:
    """The lanes of a tracker's delivery sinks, driven and waited for as one."""

    def __init__(
        self,
        spool: Spool,
        sinks: Sequence[DeliverySink],
        transport_factory: Callable[[], Any],
        counters: Counters,
        policy: RetryPolicy,
        max_in_flight: int = 8,
        yield_to: Callable[[], bool] = lambda: False,
        on_exit: Callable[[], None] = lambda: None,
        rng: "Optional[random.Random]" = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._spool = spool
        self._now = now
        self._on_exit = on_exit
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._next_heartbeat = 0.0
        self._pending = 0
        if rng is None:
            rng = random.Random()
        self._lanes = [
            Lane(sink, spool, transport_factory, counters, policy, max_in_flight, rng, now, yield_to, self._after_round, self._lane_ended)
            for sink in sinks
        ]
        self._lanes_running = len(self._lanes)
        for lane in self._lanes:
            lane.start()

    @property
    def pending(self) -> int:
        """Records in the spool, without waiting: as last counted, while the spool is busy."""
        count = self._spool.pending_now()
        if count is not None:
            self._pending = count
        return self._pending

    @property
    def last_errors(self) -> Dict[str, str]:
        return {lane.sink.name: lane.last_error for lane in self._lanes if lane.last_error}

    @property
    def running(self) -> bool:
        return any(lane.running for lane in self._lanes)

    def kick(self) -> None:
        """Look at the spool now (new records were written)."""
        for lane in self._lanes:
            lane.kick()

    @property
    def busy(self) -> bool:
        """Whether some lane has records in hand: claimed, in flight or being settled."""
        return any(lane.busy for lane in self._lanes)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every lane, at once, rests after a round started after this call that found
        nothing to send now (and none in flight); False on timeout."""
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            lane.kick()
        while all(lane.wait_idle(max(0.0, deadline - time.monotonic())) for lane in self._lanes):
            if all(lane.resting for lane in self._lanes):
                return True  # else one lane woke while another finished: wait for both again
        return False

    def next_due(self) -> Optional[float]:
        """In seconds from now, when the earliest waiting record may be sent; None if none waits."""
        times = [due for due in (lane.next_due() for lane in self._lanes) if due is not None]
        return min(times) - self._now() if times else None

    def wait_until_due(self, seconds: float) -> None:
        """Block the caller (a flush) for ``seconds``, waking early if the sender stops."""
        self._stopped.wait(seconds)

    def stop(self, timeout: float) -> None:
        """Start no new request; wait ``timeout`` at most for the lanes to settle what is in flight
        (a hung request is left to its read timeout, on its own thread)."""
        deadline = time.monotonic() + timeout
        self._stopped.set()
        for lane in self._lanes:
            lane.stop()
        self.join(max(0.0, deadline - time.monotonic()))

    def join(self, timeout: float) -> bool:
        """Wait for every lane to end (after ``stop``); False on timeout."""
        deadline = time.monotonic() + timeout
        return all(lane.join(max(0.0, deadline - time.monotonic())) for lane in self._lanes)

    def _after_round(self, idle: bool) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:  # the sender beats too: it may be busy while the worker waits
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            self._spool.heartbeat()
        if idle:  # counted afresh for stats(): another process may have sent some meanwhile
            self._pending = self._spool.pending()

    def _lane_ended(self) -> None:
        with self._lock:
            self._lanes_running -= 1
            last = self._lanes_running == 0
        if last:  # only now may others take back what this tracker claimed: nothing is in flight
            self._on_exit()


class _Concurrency:
    """How many requests a lane that has fallen behind keeps in flight: twice as many are tried for
    a moment, and kept only if the lane then delivers a tenth more a second; after a trial that did
    not pay, one more. Far from a service (20 ms a request) more pays, up to the most allowed; near
    it (loopback) a second barely does, as requests queue for the interpreter lock, not the network."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.level = 1
        self._tried_from: Optional[int] = None  # the level a trial started from
        self._doubling = True
        self._rate = 0.0  # requests a second at the level kept
        self._pause = 0  # windows to wait before trying one more again
        self.reset(time.monotonic())

    def reset(self, now: float) -> None:
        """The lane kept up: start again from one."""
        self.level, self._tried_from, self._pause, self._doubling = 1, None, 0, True
        self._window_started, self._done = now, 0

    def finished(self, now: float) -> None:
        """A request ended: at the end of a window, judge the trial, or start one."""
        self._done += 1
        elapsed = now - self._window_started
        if elapsed < _WINDOW or self._done < 2 * self.level:
            return
        rate = self._done / elapsed
        self._window_started, self._done = now, 0
        if self._tried_from is not None:
            tried, self._tried_from = self._tried_from, None
            if rate < self._rate * 1.1:  # it did not pay: back, and wait before trying one more
                self.level, self._pause, self._doubling = tried, _PAUSE_WINDOWS, False
                return
        elif self._pause:
            self._pause -= 1
        self._rate = rate
        if not self._pause and self.level < self.most:
            self._tried_from = self.level
            self.level = min(self.most, self.level * 2 if self._doubling else self.level + 1)


class _Claimed:
    """A claim in a lane's hands: the outcomes of its records, as its requests finish."""

    __slots__ = ("claim", "outcomes", "left")

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.outcomes: List[Outcome] = [NOT_SENT] * len(claim.records)
        self.left = len(claim.records)


_Request = List[Tuple[_Claimed, int]]  # the records one request carries: (claim, index in it)


class Lane:
    """One delivery sink's sending: claims, requests (up to ``max_in_flight`` at once), settling."""

    def __init__(
        self,
        sink: DeliverySink,
        spool: Spool,
        transport_factory: Callable[[], Any],
        counters: Counters,
        policy: RetryPolicy,
        max_in_flight: int,
        rng: "random.Random",
        now: Callable[[], float],
        yield_to: Callable[[], bool],
        after_round: Callable[[bool], None],
        on_exit: Callable[[], None],
    ) -> None:
        self.sink = sink
        self.last_error = ""
        self.blocked_until = 0.0  # no request starts before this time (steady wall clock)
        self._spool = spool
        self._transport_factory = transport_factory
        self._transport: Any = None
        self._counters = counters
        self._policy = policy
        self._max_in_flight = max_in_flight
        # Records in hand at most: enough for every request thread twice over, and a claim's worth.
        self._capacity = max(sink.max_batch, 2 * max_in_flight * sink.per_request)
        self._random = rng
        self._now = now
        self._yield_to = yield_to
        self._after_round = after_round
        self._on_exit = on_exit
        # One lock, three things to wait for: the lane's thread for work to settle or claim, the
        # request threads for requests, flushes for a rest. Each wakes only who it concerns.
        self._lock = threading.Lock()
        self._wake_lane = threading.Condition(self._lock)
        self._work = threading.Condition(self._lock)
        self._rested = threading.Condition(self._lock)
        self._requests: Deque[_Request] = collections.deque()  # waiting for a request thread
        self._in_hand: Dict[int, _Claimed] = {}  # id(claim) -> claim being sent
        self._finished: List[_Claimed] = []  # claims whose records all have an outcome: to settle
        self._sending = 0  # requests in flight
        self._concurrency = _Concurrency(max_in_flight)
        self._rested_at = 0.0  # when a round last found nothing to send (monotonic)
        self._started: Dict[int, float] = {}  # request thread -> when its request started (monotonic)
        self._senders = 0  # request threads alive
        self._kicked = False
        self._stopping = False
        self._rounds_started = 0
        self._idle_round = 0  # the number of the last round that found nothing to send
        self.resting = False  # between an idle round and the next round
        self._thread = threading.Thread(target=self._run, name=f"playhooks-sender-{sink.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._requests or self._sending or self._in_hand)

    def kick(self) -> None:
        with self._lock:
            self._kicked = True
            self._wake_lane.notify()

    def wait_idle(self, timeout: float) -> bool:
        with self._lock:
            target = self._rounds_started + 1
            self._kicked = True
            self._wake_lane.notify()
            return self._rested.wait_for(lambda: self._idle_round >= target or not self.running, timeout)

    def next_due(self) -> Optional[float]:
        due = self._spool.next_due(self.sink.name)
        return None if due is None else max(due, self.blocked_until)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake_lane.notify()
            self._work.notify_all()
            self._rested.notify_all()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self._transport is not None:
            self._transport.close()
        return True

    # -- the lane's own thread: claiming and settling ---------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                with self._lock:
                    self._rounds_started += 1
                    number = self._rounds_started
                    self.resting = False
                try:
                    idle, wait = self._round()
                    self._after_round(idle)
                except Exception as error:  # never let the lane die: say so, and look again shortly
                    # The type only: a message could quote a request, and requests carry keys.
                    self._counters.say("sender", "playhooks sender failed (%s); it carries on", type(error).__name__, level=ERROR)
                    idle, wait = True, _IDLE_WAIT
                with self._lock:
                    if idle:
                        self._idle_round = number
                        self._rested_at = time.monotonic()
                        self._concurrency.reset(self._rested_at)
                        self.resting = not (self._kicked or self._finished)
                        self._rested.notify_all()
                    if not (self._kicked or self._finished or self._stopping):
                        self._wake_lane.wait(wait)
                    self._kicked = False
        finally:
            self._wind_down()
            with self._lock:
                self._rested.notify_all()
            self._on_exit()

    def _round(self) -> Tuple[bool, float]:
        """Settle what finished, then top up the requests. Returns (nothing to send now, seconds
        to sleep unless woken)."""
        self._settle_finished()
        now = self._now()
        if self.blocked_until > now:
            return not self.busy, self.blocked_until - now
        with self._lock:
            self._staff()  # a request may have got stuck since: others go on without it
            room = self._capacity - sum(map(len, self._requests)) if len(self._requests) < self._max_in_flight else 0
        if room > 0:
            claims = self._spool.claim_due(self.sink.name, now, room)
            if claims:
                self._queue_requests(claims)
        if self.busy:
            return False, _IDLE_WAIT
        due = self._spool.next_due(self.sink.name)
        return True, _IDLE_WAIT if due is None else min(_IDLE_WAIT, max(0.0, due - now))

    def _queue_requests(self, claims: List[Claim]) -> None:
        records: _Request = []
        with self._lock:
            for claim in claims:
                claimed = _Claimed(claim)
                self._in_hand[id(claim)] = claimed
                records += [(claimed, index) for index in range(len(claim.records))]
            size = self.sink.per_request
            self._requests.extend(records[start : start + size] for start in range(0, len(records), size))
            self._staff()
            self._work.notify(len(self._requests))

    def _in_flight_wanted(self) -> int:
        now = time.monotonic()
        # A request that has waited this long is not what the lane should wait for: others go on.
        stuck = sum(1 for started in self._started.values() if now - started > _STUCK)
        # A lane that keeps up sends one at a time: more would only vie with the game for the lock.
        wanted = 1 if now - self._rested_at < _KEEPING_UP else self._concurrency.level
        return min(self._max_in_flight, wanted + stuck)

    def _staff(self) -> None:
        """Start request threads for the requests waiting, up to the number worth having (the lock held)."""
        while self._senders < min(self._in_flight_wanted(), self._sending + len(self._requests)):
            self._senders += 1
            threading.Thread(target=self._send_requests, name=f"playhooks-sender-{self.sink.name}-request", daemon=True).start()

    def _settle_finished(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, []
            for claimed in finished:
                del self._in_hand[id(claimed.claim)]
        for claimed in finished:
            if all(outcome is NOT_SENT for outcome in claimed.outcomes):
                self._spool.release(claimed.claim)  # untouched: back as it was
            else:
                self._settle(claimed.claim, claimed.outcomes)

    def _settle(self, claim: Claim, outcomes: List[Outcome]) -> None:
        now = self._now()
        retry: List[Record] = []
        dead: List[Record] = []
        name = self.sink.name
        for record, outcome in zip(claim.records, outcomes):
            if outcome.kind == DELIVERED:
                continue
            record.created = min(record.created, now)  # from the "future" (the clock was set back): new now
            if outcome is not NOT_SENT:
                record.attempts += outcome.attempted
                record.error = outcome.reason
                self.last_error = outcome.reason
            if outcome.kind == REJECTED:
                dead.append(record)
                self._counters.add("refused_by_service")
                self._counters.say(f"rejected:{name}", "%s refused %s %s: %s", name, record.kind, record.id, outcome.reason)
            elif self._policy.gives_up(record.attempts, now - record.created):
                dead.append(record)
                self._counters.drop(GAVE_UP, f"{name}: {record.attempts} attempts, last: {outcome.reason}")
            else:
                retry.append(record)
        due = now
        first = next((outcome for outcome in outcomes if outcome.kind == RETRY), None)
        if retry and first is not NOT_SENT and first is not None:
            # The records of a claim failed together and wait together: one file, one due time.
            due = now + self._policy.delay(max(record.attempts for record in retry), first, self._random)
            self._counters.add("retried", len(retry))
        self._spool.settle(claim, [(record, due) for record in retry], dead)

    def _wind_down(self) -> None:
        """Stopping: what no request took goes back untouched; what is in flight ends, then all is settled."""
        with self._lock:
            waiting = list(self._requests)
            self._requests.clear()
            for request in waiting:
                self._note(request, [NOT_SENT] * len(request))
            self._work.wait_for(lambda: self._sending == 0)
        self._settle_finished()

    # -- request threads ----------------------------------------------------------------------------

    def _send_requests(self) -> None:
        while True:
            with self._lock:
                while self._stopping or not self._requests or self._yield_to() or self._sending >= self._in_flight_wanted():
                    idle = not self._requests
                    woken = not self._stopping and self._work.wait(_SENDER_IDLE if idle else _YIELD_WAIT)
                    if self._stopping or (idle and not woken and not self._requests):
                        self._senders -= 1
                        return
                request = self._requests.popleft()
                self._sending += 1
                self._started[threading.get_ident()] = time.monotonic()
            outcomes = self._send(request)
            with self._lock:
                self._sending -= 1
                del self._started[threading.get_ident()]
                self._concurrency.finished(time.monotonic())
                self._staff()
                finished = len(self._finished)
                self._note(request, outcomes)
                failed = outcomes[0]
                if failed.kind == RETRY and failed.attempted and all(outcome.kind == RETRY for outcome in outcomes):
                    self._hold_back(failed)
                if self._stopping:
                    self._work.notify_all()  # the lane's thread waits for the last request to end
                if len(self._finished) > finished or len(self._requests) < self._in_flight_wanted():
                    self._kicked = True  # a claim to settle, or requests running low
                    self._wake_lane.notify()

    def _send(self, request: _Request) -> List[Outcome]:
        """One request's records, sent: each delivery noted as soon as it is known, so a process
        that stops before the claim is settled does not send it again."""
        records = [claimed.claim.records[index] for claimed, index in request]
        outcomes: List[Outcome] = []
        answers: Any = ()
        try:
            answers = self.sink.deliver([record.data for record in records], self._transport_or_new(), lambda: self._stopping)
            for (claimed, _), record, outcome in zip(request, records, answers):
                outcomes.append(outcome)
                if outcome.kind == DELIVERED:
                    self._spool.mark_sent(claimed.claim, record)
                    self._counters.add("confirmed_by_service")
        except Exception as error:  # a sink's bug must not strand its records in claimed/
            self._counters.say(
                f"deliver:{self.sink.name}", "%s failed to deliver (%s): its records go back to the queue",
                self.sink.name, type(error).__name__, level=ERROR,
            )
        finally:
            if hasattr(answers, "close"):
                answers.close()
        return outcomes + [NOT_SENT] * (len(records) - len(outcomes))

    def _transport_or_new(self) -> Any:
        with self._lock:
            if self._transport is None:
                self._transport = self._transport_factory()  # urllib3 and the TLS roots came with the tracker
            return self._transport

    def _note(self, request: _Request, outcomes: List[Outcome]) -> None:
        """Record a request's outcomes (the condition held); a claim whose records all have one is finished."""
        for (claimed, index), outcome in zip(request, outcomes):
            claimed.outcomes[index] = outcome
            claimed.left -= 1
            if claimed.left == 0:
                self._finished.append(claimed)

    def _hold_back(self, failed: Outcome) -> None:
        """A request failed as a whole (the condition held): the service is failing or throttling.
        The requests not yet started wait with it, without using an attempt, and the lane pauses."""
        waiting = list(self._requests)
        self._requests.clear()
        not_tried = attrs.evolve(failed, attempted=False)
        for request in waiting:
            self._note(request, [not_tried] * len(request))
        if failed.retry_after is not None:  # the service asked everyone to wait: nothing goes before then
            pause = min(failed.retry_after, MAX_RETRY_AFTER)
        else:
            pause = self._policy.delay(1, failed, self._random)
        self.blocked_until = max(self.blocked_until, self._now() + pause)
