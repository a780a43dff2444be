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

from ._retry import DELIVERED, REJECTED, RetryPolicy
from ._services import DeliverySink
from ._spool import Claim, Record, Spool
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
        rng: Optional[random.Random] = None,
    ) -> None:
        self._spool = spool
        self._sinks = list(sinks)
        self._transport_factory = transport_factory
        self._transport: Any = None
        self._counters = counters
        self._policy = policy
        self._random = rng or random.Random()
        self._blocked_until: Dict[str, float] = {}  # per sink: no request before this wall time
        self._last_error: Dict[str, str] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._stopped = threading.Event()
        self._condition = threading.Condition()
        self._rounds = 0
        self._idle_round = -1
        self._thread = threading.Thread(target=self._run, name="playhooks-sender", daemon=True)
        self._thread.start()

    @property
    def last_errors(self) -> Dict[str, str]:
        return dict(self._last_error)

    def kick(self) -> None:
        """Look at the spool now (new records were written)."""
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until a whole round after this call found nothing due; False on timeout."""
        with self._condition:
            target = self._rounds + 1
        self._wake.set()
        with self._condition:
            return self._condition.wait_for(lambda: self._idle_round >= target or not self._thread.is_alive(), timeout)

    def next_due(self) -> Optional[float]:
        """The wall time the earliest waiting record may be sent, or None if none waits."""
        times = []
        for sink in self._sinks:
            due = self._spool.next_due(sink.name)
            if due is not None:
                times.append(max(due, self._blocked_until.get(sink.name, 0.0)))
        return min(times) if times else None

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
        while not self._stopping:
            try:
                idle, wait = self._round()
            except Exception:  # never let the sender die: log, and look again shortly
                log.exception("playhooks sender failed; it carries on")
                idle, wait = True, _IDLE_WAIT
            with self._condition:
                self._rounds += 1
                if idle:
                    self._idle_round = self._rounds
                self._condition.notify_all()
            if idle:
                self._wake.wait(wait)
                self._wake.clear()

    def _round(self) -> Tuple[bool, float]:
        """Send one batch per sink that has work. Returns (nothing was due, seconds to sleep)."""
        now = time.time()
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
        if self._transport is None:
            self._transport = self._transport_factory()  # urllib3 loads on this thread, when first needed
        records = [record for claim in claims for record in claim.records]
        outcomes = sink.deliver([record.data for record in records], self._transport)
        settled = dict(zip(map(id, records), outcomes))
        now = time.time()
        for claim in claims:
            retry: List[Tuple[Record, float]] = []
            dead: List[Record] = []
            for record in claim.records:
                outcome = settled[id(record)]
                if outcome.kind == DELIVERED:
                    self._counters.add("sent")
                    continue
                record.attempts += outcome.attempted
                record.error = outcome.reason
                self._last_error[sink.name] = outcome.reason
                if outcome.kind == REJECTED:
                    dead.append(record)
                    self._counters.add("rejected")
                    log.warning("%s refused %s %s: %s", sink.name, record.kind, record.id, outcome.reason)
                elif self._policy.gives_up(record.attempts, now - record.created):
                    dead.append(record)
                    self._counters.drop(GAVE_UP, f"{sink.name}: {record.attempts} attempts, last: {outcome.reason}")
                else:
                    delay = self._policy.delay(record.attempts, outcome, self._random)
                    retry.append((record, now + delay))
                    self._counters.add("retried")
                    if outcome.retry_after is not None:
                        # The service asked everyone to wait: nothing goes to it before then.
                        self._blocked_until[sink.name] = max(self._blocked_until.get(sink.name, 0.0), now + delay)
            self._spool.settle(claim, retry, dead)
