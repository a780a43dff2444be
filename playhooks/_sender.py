"""The sender thread: from the spool to the services, one claimed file at a time.

It sends what is due, applies each outcome (delivered: gone; retry: back in the queue at a later
time; rejected: dead-lettered and counted), and sleeps until the next record is due. A service
that answered 429 gets no request at all until the time it asked for has passed.

It is a thread of its own, apart from the worker that writes the spool, so that a slow or hung
service never delays the spooling of new payloads (the durability interval).
"""

import logging
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._retry import DELIVERED, NOT_SENT, REJECTED, RETRY, Outcome, RetryPolicy
from ._services import DeliverySink
from ._spool import HEARTBEAT_SECONDS, Claim, Record, Spool
from ._stats import GAVE_UP, Counters

log = logging.getLogger("playhooks")

_IDLE_WAIT = 1.0  # seconds between looks at the spool when nothing is due (another process may add)


class Sender:
    def __init__(
        self,
        spool: Spool,
        sinks: Sequence[DeliverySink],
        transport_factory: Callable[[], Any],
        counters: Counters,
        policy: RetryPolicy,
        on_exit: Callable[[], None] = lambda: None,
        rng: Optional[random.Random] = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._spool = spool
        self._sinks = list(sinks)
        self._transport_factory = transport_factory
        self._transport: Any = None
        self._counters = counters
        self._policy = policy
        self._random = rng or random.Random()
        self._now = now  # due times, back-off and ages: see _clock.steady_wall
        self._blocked_until: Dict[str, float] = {}  # per sink: no request before this time
        self._last_error: Dict[str, str] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._stopped = threading.Event()
        self._on_exit = on_exit
        self._condition = threading.Condition()
        self._rounds_started = 0
        self._idle_round = 0  # the number of the last round that found nothing due
        self.pending = 0  # records in the spool, as the last round counted them
        self._next_heartbeat = 0.0
        self._thread = threading.Thread(target=self._run, name="playhooks-sender", daemon=True)
        self._thread.start()

    @property
    def last_errors(self) -> Dict[str, str]:
        return dict(self._last_error)

    def kick(self) -> None:
        """Look at the spool now (new records were written)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def wait_idle(self, timeout: float) -> bool:
        """Wait until a round that starts after this call finds nothing due; False on timeout.

        A round already under way may have listed the spool before the latest records arrived,
        so it does not count.
        """
        with self._condition:
            target = self._rounds_started + 1
        self._wake.set()
        with self._condition:
            return self._condition.wait_for(lambda: self._idle_round >= target or not self.running, timeout)

    def next_due(self) -> Optional[float]:
        """In seconds from now, when the earliest waiting record may be sent; None if none waits."""
        times = []
        for sink in self._sinks:
            due = self._spool.next_due(sink.name)
            if due is not None:
                times.append(max(due, self._blocked_until.get(sink.name, 0.0)))
        return min(times) - self._now() if times else None

    def wait_until_due(self, seconds: float) -> None:
        """Block the caller (a flush) for ``seconds``, waking early if the sender stops."""
        self._stopped.wait(seconds)

    def stop(self, timeout: float) -> None:
        """Stop after the request in flight, if any; a hung request is left to its read timeout."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._transport is not None and not self._thread.is_alive():
            self._transport.close()

    def _run(self) -> None:
        try:
            while not self._stopping:
                with self._condition:
                    self._rounds_started += 1
                    number = self._rounds_started
                try:
                    idle, wait = self._round()
                    self.pending = self._spool.pending()
                except Exception as error:  # never let the sender die: say so, and look again shortly
                    # The type only: a message could quote a request, and requests carry keys.
                    self._counters.say("sender", "playhooks sender failed (%s); it carries on", type(error).__name__, level=logging.ERROR)
                    idle, wait = True, _IDLE_WAIT
                with self._condition:
                    if idle:
                        self._idle_round = number
                    self._condition.notify_all()
                if idle:
                    self._wake.wait(wait)
                    self._wake.clear()
        finally:
            # Only now may others take back what this tracker claimed: nothing is in flight.
            with self._condition:
                self._condition.notify_all()
            self._on_exit()

    def _round(self) -> Tuple[bool, float]:
        """Send one batch per sink that has work. Returns (nothing was due, seconds to sleep)."""
        now = self._now()
        if now >= self._next_heartbeat:  # the sender beats too: it may be busy while the worker waits
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            self._spool.heartbeat()
        idle, wait = True, _IDLE_WAIT
        for sink in self._sinks:
            if self._stopping:
                break
            blocked = self._blocked_until.get(sink.name, 0.0)
            if blocked > now:
                wait = min(wait, blocked - now)
                continue
            claims = self._spool.claim_due(sink.name, now, sink.max_batch)
            if claims:
                idle = False
                self._send(sink, claims)
            else:
                due = self._spool.next_due(sink.name)
                if due is not None:
                    wait = min(wait, max(0.0, due - now))
        return idle, wait

    def _send(self, sink: DeliverySink, claims: List[Claim]) -> None:
        """Send the claims' records and settle each claim.

        Each delivery is noted as soon as it is known, and a stopping tracker stops between two
        requests: only a request truly in flight when the process ends can be sent twice.
        """
        if self._transport is None:
            self._transport = self._transport_factory()  # urllib3 loads on this thread, when first needed
        records = [(claim, record) for claim in claims for record in claim.records]
        outcomes: List[Outcome] = []
        answers: Any = ()
        try:
            answers = sink.deliver([record.data for _, record in records], self._transport, lambda: self._stopping)
            for (claim, record), outcome in zip(records, answers):
                outcomes.append(outcome)
                if outcome.kind == DELIVERED:
                    self._spool.mark_sent(claim, record)
                    self._counters.add("sent")
        except Exception as error:  # a sink's bug must not strand its records in claimed/
            self._counters.say(
                f"deliver:{sink.name}", "%s failed to deliver (%s): its records go back to the queue",
                sink.name, type(error).__name__, level=logging.ERROR,
            )
        finally:
            if hasattr(answers, "close"):
                answers.close()
        outcomes += [NOT_SENT] * (len(records) - len(outcomes))
        for claim in claims:
            own, outcomes = outcomes[: len(claim.records)], outcomes[len(claim.records) :]
            if all(outcome is NOT_SENT for outcome in own):
                self._spool.release(claim)  # untouched: back as it was
            else:
                self._settle(sink, claim, own)

    def _settle(self, sink: DeliverySink, claim: Claim, outcomes: List[Outcome]) -> None:
        now = self._now()
        retry: List[Record] = []
        dead: List[Record] = []
        for record, outcome in zip(claim.records, outcomes):
            if outcome.kind == DELIVERED:
                continue
            record.created = min(record.created, now)  # from the "future" (the clock was set back): new now
            if outcome is not NOT_SENT:
                record.attempts += outcome.attempted
                record.error = outcome.reason
                self._last_error[sink.name] = outcome.reason
            if outcome.kind == REJECTED:
                dead.append(record)
                self._counters.add("rejected")
                self._counters.say(f"rejected:{sink.name}", "%s refused %s %s: %s", sink.name, record.kind, record.id, outcome.reason)
            elif self._policy.gives_up(record.attempts, now - record.created):
                dead.append(record)
                self._counters.drop(GAVE_UP, f"{sink.name}: {record.attempts} attempts, last: {outcome.reason}")
            else:
                retry.append(record)
        due = now
        first = next((outcome for outcome in outcomes if outcome.kind == RETRY), None)
        if retry and first is not NOT_SENT and first is not None:
            # The records of a claim failed together and wait together: one file, one due time.
            due = now + self._policy.delay(max(record.attempts for record in retry), first, self._random)
            self._counters.add("retried", len(retry))
            if first.retry_after is not None:
                # The service asked everyone to wait: nothing goes to it before then.
                self._blocked_until[sink.name] = max(self._blocked_until.get(sink.name, 0.0), due)
        self._spool.settle(claim, [(record, due) for record in retry], dead)

