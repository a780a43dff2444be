"""What to do after a delivery attempt: a pure function of the answer, and the back-off.

The rules come from ``spec/apis-notes.md``:

- HTTP: never retry 400, 401, 403, 404, 413, 414, 422, 501 (nor other 4xx); retry 408, 409, 429
  and every 5xx; a 429 waits for ``Retry-After`` (or PlayFab's ``retryAfterSeconds``).
- PlayFab's own error codes, which may come with any status: retry the throttling and
  availability codes below, treat every other code as final.
- No answer at all (refused, reset, timed out) is retried. For PlayCamp that is safe, since it
  deduplicates on ``sessionId``; for PlayFab it can write an event twice when the request had
  arrived, which is why each event carries ``playhooks_event_id``.

Back-off is exponential with full jitter, capped, and bounded by attempts and by age: a record
that cannot be delivered within them is given up on, counted, and kept in the dead-letter folder.
"""

from typing import TYPE_CHECKING, Any, Mapping, Optional

import attrs

if TYPE_CHECKING:
    import random  # the caller's generator: loading the module is the sender's business

DELIVERED = "delivered"
RETRY = "retry"
REJECTED = "rejected"

FINAL_STATUSES = frozenset({400, 401, 403, 404, 413, 414, 422, 501})
RETRY_STATUSES = frozenset({408, 409, 429})
# PlayFab errorCodes worth another try: throttling, concurrency and availability.
PLAYFAB_RETRY_CODES = frozenset({1199, 1342, 1133, 1287, 1127, 1131, 1214, 1123})
MAX_RETRY_AFTER = 3600.0  # a server asking for more than an hour is not taken literally


@attrs.frozen
class Outcome:
    """The result of one delivery attempt.

    Attributes:
        kind: ``delivered``, ``retry`` or ``rejected``.
        reason: why, in words fit for a log (never a secret).
        retry_after: for ``retry``, the seconds the service asked to wait, if it did.
        attempted: False for a record not sent at all because the service had just failed
            another: it waits with the others but does not use up an attempt.
        status: the HTTP status (or PlayFab's ``code``) of the answer, if there was one.
    """

    kind: str
    reason: str = ""
    retry_after: Optional[float] = None
    attempted: bool = True
    status: Optional[int] = attrs.field(default=None, eq=False)  # informational: not part of what an outcome is


NOT_SENT = Outcome(RETRY, "not sent: the tracker was stopping", attempted=False)


@attrs.frozen
class RetryPolicy:
    """How long to wait between attempts, and when to give up.

    Attributes:
        base_delay: the first wait, in seconds; each retry doubles it (with jitter).
        max_delay: the longest wait between two attempts.
        max_attempts: attempts before a record is given up on.
        max_age: seconds after which an undelivered record is given up on (7 days).
    """

    base_delay: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    # Bounded, so a due time further ahead than any wait can only mean the clock was set back.
    max_delay: float = attrs.field(default=300.0, validator=[attrs.validators.gt(0), attrs.validators.le(MAX_RETRY_AFTER)])
    max_attempts: int = attrs.field(default=25, validator=attrs.validators.ge(1))
    max_age: float = attrs.field(default=7 * 24 * 3600.0, validator=attrs.validators.gt(0))

    def delay(self, attempts: int, outcome: Outcome, rng: "random.Random") -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        backoff = rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** min(attempts - 1, 30)))
        if outcome.retry_after is not None:
            # Never sooner than the service asked; jitter on top so many clients do not return at once.
            return min(outcome.retry_after, MAX_RETRY_AFTER) + min(backoff, self.base_delay)
        return backoff

    def gives_up(self, attempts: int, age: float) -> bool:
        return attempts >= self.max_attempts or age >= self.max_age


def classify(status: int, headers: Mapping[str, str], body: Any) -> Outcome:
    """The outcome of an HTTP answer, from its status, headers and decoded JSON body."""
    error_code = body.get("errorCode") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] >= 400:
        status = body["code"]  # PlayFab may report an error inside a 200 (X-ReportErrorAsSuccess)
    if 200 <= status < 300:
        return Outcome(DELIVERED, status=status)
    reason = _describe(status, body)
    if status in RETRY_STATUSES or (status >= 500 and status not in FINAL_STATUSES):
        # The service is struggling, whatever its body's error code says about this request.
        return Outcome(RETRY, reason, _retry_after(headers, body), status=status)
    if type(error_code) is int and error_code in PLAYFAB_RETRY_CODES:
        return Outcome(RETRY, reason, _retry_after(headers, body), status=status)
    return Outcome(REJECTED, reason, status=status)


def _retry_after(headers: Mapping[str, str], body: Any) -> Optional[float]:
    candidates = [headers.get("Retry-After") if headers else None]
    if isinstance(body, dict):
        candidates.append(body.get("retryAfterSeconds"))
    for value in candidates:
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue  # an HTTP date or garbage: fall back to our own back-off
        if seconds >= 0:
            return seconds
    return None


def _describe(status: int, body: Any) -> str:
    if isinstance(body, dict):
        name = body.get("error") or body.get("errorCode") or body.get("code")
        message = body.get("errorMessage") or body.get("message")
        details = body.get("errorDetails") or body.get("details")
        text = f"HTTP {status} {name or ''}".rstrip()
        if message and message != name:
            text += f": {message}"
        if details:
            text += f" {details}"
        return text[:500]
    return f"HTTP {status}"
