"""The relay's optional Redis backend: one durable queue and one rate limit shared by every instance.

For studios past one machine: several relay instances behind a load balancer store into the same
Redis, and any of them forwards. Only the relay imports this module, and only when given a Redis
URL, so the ``redis`` client (the ``relay-redis`` extra) is needed by no one else.

Per destination (``playcamp``, ``playfab``), under ``prefix``::

    {prefix}:{destination}:stream    records waiting or being sent, one entry each (``r``: the record's line)
    {prefix}:{destination}:delayed   records waiting for a retry: a sorted set, scored by due millisecond
    {prefix}:{destination}:dead      records a service refused, or given up on (a capped stream)
    {prefix}:destinations            the destinations ever stored into, for ``pending()``

- ``put`` adds a request's records in one Lua script that first checks the destination's bound:
  all of them are stored, or none. It returns once Redis has them (with ``--appendonly yes``, in
  its log), so the relay answers 2xx only for what is stored.
- The stream has one consumer group; each process reads as a consumer of its own. An entry read
  stays in the group's pending list, owned by its reader, until it is delivered (acknowledged and
  deleted at once) or settled. An entry a reader has not touched for ``reclaim_after`` seconds is
  taken over by the next instance that claims (``XAUTOCLAIM``): its reader is taken for dead.
- A live reader must not look dead while a request is slow: a keeper thread touches every entry
  this process holds in flight every ``reclaim_after / 3`` seconds (``XCLAIM ... JUSTID`` to
  itself, which resets the idle time without counting a delivery), in a script that touches only
  entries still its own, so a process that was taken for dead never takes back what another has.
- Retries wait in the sorted set, not the stream: a record is moved back into the stream, by the
  script that claims, once it is due; the move and the claim are one atomic step.
- Settling checks, entry by entry and atomically, that the entry is still this consumer's: if it was
  taken over meanwhile, the new owner sends it, and this process neither retries nor buries it.

The guarantee is at least once, as with the spool: an instance that dies after a delivery and before
its acknowledgement has that record sent again by whoever reclaims it. PlayCamp keys sessions by
``sessionId``; events carry their own id.

Errors on the sender's side (``claim_due``, ``mark_sent``, ``settle``...) are never raised into a
lane: they are logged once per outage on the ``playhooks.relay`` logger, the call does nothing, and
entries left in Redis are reclaimed once Redis answers again. ``put`` is the one that raises
(``StoreUnavailable``): the relay must then answer 503, not 2xx.

A single Redis (or a primary with replicas): the scripts touch keys of several destinations' hash
slots, so Redis Cluster is not supported.
"""

import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import attrs

from .._errors import ConfigurationError
from .._spool import Claim, Record

if TYPE_CHECKING:
    import redis

__all__ = ["RedisQueue", "RedisRateLimiter", "StoreFull", "StoreUnavailable", "connect"]

log = logging.getLogger("playhooks.relay")

EXTRA = "relay-redis"
GROUP = "senders"
_CLOCK_SET_BACK_MS = 2 * 3600 * 1000  # as the spool: no retry waits this long, so a later due time is due now
_DEFAULT_TIMEOUT = 5.0  # seconds, connecting and reading: a hung Redis must not hang a request for ever
_FORGET_CONSUMERS_EVERY = 600.0  # seconds between sweeps of consumers long gone
_CONSUMER_GONE_MS = 3600 * 1000  # a consumer that has held nothing for an hour is a finished process
_AGE_SAMPLE = 100  # retries looked at for the oldest record's age


class StoreUnavailable(OSError):
    """Records could not be stored in Redis: nothing of them was. The relay answers 503.

    Attributes:
        reason: why, in words fit for a log or a readiness probe (never a password).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreFull(StoreUnavailable):
    """Storing would take the destination past ``max_records``: nothing was stored."""


# -- the scripts ---------------------------------------------------------------------------------
# Each runs atomically in Redis. A script's first write fails alone when Redis is out of memory, and
# once one write is done Redis lets the rest through: a script is never half-applied for want of memory.

# KEYS: stream, delayed, destinations. ARGV: max records, destination, then one line per record.
# Returns {1, held after} if stored, {0, held} if that would pass the bound.
_PUT = """
local held = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local adding = #ARGV - 2
if held + adding > tonumber(ARGV[1]) then
  return {0, held}
end
redis.call('SADD', KEYS[3], ARGV[2])
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'r', ARGV[i])
end
return {1, held + adding}
"""

# KEYS: stream, delayed. ARGV: group, consumer, now ms, "(" .. set-back ms, min idle ms, count, cursor.
# Moves due retries into the stream, takes over entries idle past min idle (a dead reader's), then
# reads new ones, up to count in all. Returns {next cursor, {id, line, id, line...}}; a line is false
# for an entry that has no record field.
_CLAIM = """
local stream, delayed, group, consumer = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local count = tonumber(ARGV[6])
local function promote(low, high)
  local due = redis.call('ZRANGEBYSCORE', delayed, low, high, 'LIMIT', 0, count)
  for _, line in ipairs(due) do
    redis.call('XADD', stream, '*', 'r', line)
    redis.call('ZREM', delayed, line)
  end
end
local function record(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'r' then return fields[i + 1] end
  end
  return false
end
promote('-inf', ARGV[3])
promote(ARGV[4], '+inf')
local out = {}
local taken = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[5], ARGV[7], 'COUNT', count)
for _, entry in ipairs(taken[2]) do
  if entry then
    out[#out + 1] = entry[1]
    out[#out + 1] = record(entry[2])
  end
end
local room = count - #out / 2
if room > 0 then
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', room, 'STREAMS', stream, '>')
  if read then
    for _, entry in ipairs(read[1][2]) do
      out[#out + 1] = entry[1]
      out[#out + 1] = record(entry[2])
    end
  end
end
return {taken[1], out}
"""

# KEYS: stream, delayed, dead. ARGV: group, consumer, max dead letters, then fours: entry id, what
# ("a" delivered, "r" retry, "d" dead, "b" back untouched), due ms, line. Only "a" acts on an entry
# another consumer has taken over: it is delivered, whoever holds it. Returns entries settled.
_SETTLE = """
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local settled = 0
for i = 4, #ARGV, 4 do
  local id, what = ARGV[i], ARGV[i + 1]
  local mine = what == 'a'
  if not mine then
    local pending = redis.call('XPENDING', stream, group, id, id, 1)
    mine = pending[1] ~= nil and pending[1][2] == consumer
  end
  if mine then
    if what == 'r' then
      redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i + 3])
    elseif what == 'd' then
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'r', ARGV[i + 3])
    elseif what == 'b' then
      local entry = redis.call('XRANGE', stream, id, id)
      if entry[1] then
        redis.call('XADD', stream, '*', unpack(entry[1][2]))
      end
    end
    redis.call('XACK', stream, group, id)
    redis.call('XDEL', stream, id)
    settled = settled + 1
  end
end
return settled
"""

# KEYS: stream. ARGV: group, consumer, entry ids. Resets the idle time of those still this
# consumer's; returns how many were.
_KEEP = """
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local kept = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)
  if pending[1] ~= nil and pending[1][2] == consumer then
    redis.call('XCLAIM', stream, group, consumer, 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
"""

# KEYS: stream, delayed. ARGV: group. Returns {entries in the stream, of them read and not settled,
# retries waiting, the earliest retry's due ms or false}.
_STATUS = """
local queued = redis.call('XLEN', KEYS[1])
local taken = 0
if queued > 0 then
  local summary = redis.pcall('XPENDING', KEYS[1], ARGV[1])
  if type(summary) == 'table' and not summary.err then taken = summary[1] end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {queued, taken, redis.call('ZCARD', KEYS[2]), first[2] or false}
"""

# KEYS: stream, delayed. Returns the first entry's line (or false) and the earliest retries' lines.
_OLDEST = """
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local line = false
if head[1] then
  for i = 1, #head[1][2], 2 do
    if head[1][2][i] == 'r' then line = head[1][2][i + 1] end
  end
end
return {line, redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)}
"""

# KEYS: the key's counter. ARGV: window ms. A fixed window per key: {requests in it, ms left in it}.
_RATE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""


def connect(url: str, timeout: float = _DEFAULT_TIMEOUT) -> "redis.Redis":
    """A Redis client for ``url`` (``redis://[:password@]host:port/db``, ``rediss://``, ``unix://``).

    No connection is made yet: Redis may start after the relay (see ``RedisQueue.problem``).

    Args:
        timeout: seconds to connect, and to wait for each answer.

    Raises:
        ConfigurationError: the ``redis`` package is missing (the ``relay-redis`` extra), or the
            URL cannot be a Redis URL (the message never quotes it: it may hold a password).
    """
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            f"a Redis URL needs the redis client: pip install 'playhooks[{EXTRA}]'"
        ) from None
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError as error:
        raise ConfigurationError(f"redis url: {_scrub(str(error))}") from None


@attrs.define
class _InFlight:
    """A claim this process holds: its records' entry ids, and which of them were delivered."""

    claim: Claim
    ids: Dict[int, str]  # id(record) -> stream entry id
    sent: set = attrs.Factory(set)  # entry ids acknowledged by mark_sent


class _Outage:
    """Says once that Redis fails, and once that it answers again: not once per call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reason: Optional[str] = None

    def failed(self, doing: str, error: BaseException) -> str:
        reason = _reason(error)
        with self._lock:
            first, self.reason = self.reason is None, reason
        if first:
            log.warning("playhooks relay: redis failed while %s (%s); what it holds is sent once it answers", doing, reason)
        return reason

    def answered(self) -> None:
        if self.reason is None:  # the usual case: no lock to take
            return
        with self._lock:
            was, self.reason = self.reason, None
        if was is not None:
            log.warning("playhooks relay: redis answers again")


class RedisQueue:
    """A durable queue in Redis Streams, shared by relay instances; a stand-in for ``Spool`` in the sender.

    Thread-safe: the relay's request threads ``put``, the sender's lanes claim and settle.

    Args:
        client: a ``redis.Redis`` (see ``connect``); the caller closes it, after ``close()``.
        prefix: the start of every key, so several relays (or tests) can share one Redis.
        consumer: this process's name in the consumer group; unique per process (the default: host,
            process id and a random part, made again in a forked child).
        reclaim_after: seconds after which an entry nobody touched is taken for a dead instance's.
        max_records: records (waiting, retrying and in flight) a destination may hold; ``put``
            refuses past it.
        max_dead: dead letters kept per destination, the oldest trimmed first.
        now: the wall clock due and created times are read from.

    Raises:
        ValueError: a ``reclaim_after`` or bound that cannot be applied.
    """

    def __init__(
        self,
        client: "redis.Redis",
        prefix: str = "playhooks",
        consumer: Optional[str] = None,
        reclaim_after: float = 60.0,
        max_records: int = 1_000_000,
        max_dead: int = 100_000,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not (isinstance(reclaim_after, (int, float)) and math.isfinite(reclaim_after) and reclaim_after >= 0.003):
            raise ValueError(f"reclaim_after: must be a number of seconds, at least 0.003 (got {reclaim_after!r})")
        if type(max_records) is not int or max_records < 1 or type(max_dead) is not int or max_dead < 1:
            raise ValueError(f"max_records, max_dead: must be whole numbers >= 1 (got {max_records!r}, {max_dead!r})")
        self._client = client
        self.prefix = prefix
        self.reclaim_after = float(reclaim_after)
        self.max_records = max_records
        self.max_dead = max_dead
        self._now = now
        self._named = consumer
        self._consumer = consumer or _consumer_name()
        self._pid = os.getpid()
        self._put = client.register_script(_PUT)
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(_SETTLE)
        self._keep = client.register_script(_KEEP)
        self._status = client.register_script(_STATUS)
        self._oldest = client.register_script(_OLDEST)
        self._lock = threading.Lock()
        self._in_flight: Dict[int, _InFlight] = {}  # id(claim) -> what it holds
        self._groups: set = set()  # destinations whose group this process has made sure of
        self._cursors: Dict[str, str] = {}  # per destination: where XAUTOCLAIM's scan goes on from
        self._counted: Dict[str, int] = {}  # per destination: records, as last counted (pending_now)
        self._outage = _Outage()
        self._stopping = threading.Event()
        self._keeper: Optional[threading.Thread] = None
        self._next_sweep = time.monotonic() + _FORGET_CONSUMERS_EVERY
        self.refreshes = 0  # keeper rounds done: tests wait on it instead of on the clock

    @property
    def consumer(self) -> str:
        """This process's consumer name (a forked child takes a new one: it holds nothing yet)."""
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self._pid = os.getpid()
                    self._consumer = self._named or _consumer_name()
                    self._in_flight.clear()
                    self._keeper = None  # threads do not survive a fork
        return self._consumer

    def _key(self, destination: str, part: str) -> str:
        return f"{self.prefix}:{destination}:{part}"

    def _keys(self, destination: str) -> List[str]:
        return [self._key(destination, "stream"), self._key(destination, "delayed"), self._key(destination, "dead")]

    # -- the relay's request path ----------------------------------------------------------------

    def put(self, destination: str, records: Sequence[Record]) -> None:
        """Store ``records`` for ``destination``, all or none, due now; returns once Redis has them.

        Raises:
            StoreFull: they would take the destination past ``max_records``.
            StoreUnavailable: Redis could not be reached or refused them.
            TypeError, ValueError: a record that cannot be written as JSON (before anything is sent).
        """
        lines = [record.to_line() for record in records]
        if not lines:
            return
        stream, delayed, _ = self._keys(destination)
        try:
            self._ensure_group(destination)
            stored, held = self._put(keys=[stream, delayed, f"{self.prefix}:destinations"], args=[self.max_records, destination, *lines])
        except _redis_errors() as error:
            raise StoreUnavailable(f"redis: {_reason(error)}") from None
        self._counted[destination] = int(held)
        if not int(stored):
            raise StoreFull(f"{destination}: {int(held)} records held, {len(lines)} more would pass {self.max_records}")

    def problem(self) -> Optional[str]:
        """None if Redis answers, else why not, in a few words (for a readiness probe)."""
        try:
            self._client.ping()
        except _redis_errors() as error:
            return f"redis: {_reason(error)}"
        return None

    def oldest_age(self, destination: str) -> Optional[float]:
        """Seconds since the oldest waiting record of ``destination`` was accepted; None if none waits.

        Read from the heads of the queue: the stream's first entry and the earliest retries, not every
        record (a record behind them may be older, rarely). None too while Redis fails.
        """
        stream, delayed, _ = self._keys(destination)
        try:
            head, retries = self._oldest(keys=[stream, delayed], args=[_AGE_SAMPLE])
        except _redis_errors() as error:
            self._outage.failed("reading the oldest record", error)
            return None
        created = [record.created for record in map(_parse, [head, *retries]) if record is not None]
        return max(0.0, self._now() - min(created)) if created else None

    # -- the sender's side: Spool's interface ------------------------------------------------------

    def claim_due(self, destination: str, now: float, max_records: int) -> List[Claim]:
        """Take up to ``max_records`` due records: first those a dead instance held, then new ones.

        Returns at most one claim. An entry that holds no readable record is buried with what it held.
        """
        if max_records < 1:
            return []
        consumer = self.consumer
        now_ms = _millis(now)
        stream, delayed, _ = self._keys(destination)
        args = [GROUP, consumer, now_ms, f"({now_ms + _CLOCK_SET_BACK_MS}", _millis(self.reclaim_after), max_records]
        try:
            self._ensure_group(destination)
            try:
                cursor, entries = self._claim(keys=[stream, delayed], args=[*args, self._cursors.get(destination, "0-0")])
            except _no_group() as error:
                if "NOGROUP" not in str(error):
                    raise
                self._groups.discard(destination)  # the stream was deleted under us: make the group again
                self._ensure_group(destination)
                cursor, entries = self._claim(keys=[stream, delayed], args=[*args, "0-0"])
        except _redis_errors() as error:
            self._outage.failed("claiming", error)
            return []
        self._outage.answered()
        self._cursors[destination] = _text(cursor)
        with self._lock:
            held = {entry for flight in self._in_flight.values() for entry in flight.ids.values()}
        records: List[Record] = []
        ids: Dict[int, str] = {}
        size = 0
        unreadable: List[Tuple[str, str]] = []
        for index in range(0, len(entries), 2):
            entry, line = _text(entries[index]), entries[index + 1]
            if entry in held:
                continue  # already in one of this process's claims: the keeper was late, nothing more
            record = _parse(line)
            if record is None:
                unreadable.append((entry, _text(line) if line else ""))
                continue
            records.append(record)
            ids[id(record)] = entry
            size += len(line)
        if unreadable:
            self._bury_unreadable(destination, unreadable)
        if not records:
            return []
        claim = Claim(destination, None, tuple(records), f"redis:{ids[id(records[0])]}", size)
        with self._lock:
            self._in_flight[id(claim)] = _InFlight(claim, ids)
        self._start_keeper()
        return [claim]

    def mark_sent(self, claim: Claim, record: Record) -> None:
        """``record`` was delivered: gone from Redis at once, so no instance sends it again."""
        with self._lock:
            flight = self._in_flight.get(id(claim))
            entry = flight.ids.get(id(record)) if flight else None
        if flight is None or entry is None:
            return
        stream = self._key(claim.destination, "stream")
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.xack(stream, GROUP, entry)
                pipe.xdel(stream, entry)
                pipe.execute()
        except _redis_errors() as error:
            self._outage.failed("marking a record delivered", error)
            return  # settle tries again; at worst it is sent again after a reclaim
        with self._lock:
            flight.sent.add(entry)

    def settle(self, claim: Claim, retry: Sequence[Tuple[Record, float]], dead: Sequence[Record]) -> None:
        """Finish a claim in one atomic step: retries into the delayed set at their due times, dead
        letters into the dead stream, delivered records acknowledged; each entry only if this process
        still holds it (else the instance that took it over sends it)."""
        with self._lock:
            flight = self._in_flight.pop(id(claim), None)
        if flight is None:
            return
        fates: Dict[int, Tuple[str, int]] = {id(record): ("r", _millis(due)) for record, due in retry}
        fates.update((id(record), ("d", 0)) for record in dead)
        args: List[Any] = []
        for record in claim.records:
            entry = flight.ids.get(id(record))
            what, due_ms = fates.get(id(record), ("a", 0))
            if entry is None or (what == "a" and entry in flight.sent):
                continue
            args += [entry, what, due_ms, record.to_line() if what != "a" else ""]
        self._run_settle(claim.destination, args, "settling")

    def release(self, claim: Claim) -> None:
        """Put a claim's records back at the end of the stream untouched, for any instance to send."""
        with self._lock:
            flight = self._in_flight.pop(id(claim), None)
        if flight is None:
            return
        args: List[Any] = []
        for record in claim.records:
            entry = flight.ids.get(id(record))
            if entry is not None:
                args += [entry, "a" if entry in flight.sent else "b", 0, ""]
        self._run_settle(claim.destination, args, "releasing")

    def _run_settle(self, destination: str, args: List[Any], doing: str) -> None:
        """Run the settling script; on failure the entries stay pending, and are reclaimed once idle
        (this process no longer keeps them fresh)."""
        if not args:
            return
        try:
            self._settle(keys=self._keys(destination), args=[GROUP, self.consumer, self.max_dead, *args])
        except _redis_errors() as error:
            self._outage.failed(doing, error)
            return
        self._outage.answered()

    def _bury_unreadable(self, destination: str, entries: List[Tuple[str, str]]) -> None:
        log.warning("playhooks relay: %d unreadable entries in %s's redis stream: moved to its dead letters", len(entries), destination)
        self._run_settle(destination, [part for entry, line in entries for part in (entry, "d", 0, line)], "burying")

    def next_due(self, destination: str) -> Optional[float]:
        """When the earliest record nobody is sending is due: now if one is in the stream, else the
        earliest retry's time; None if none waits (or Redis fails: the lane looks again soon)."""
        status = self._read_status(destination)
        if status is None:
            return None
        queued, taken, _, first = status
        if queued > taken:
            return self._now()
        return None if first is None else first / 1000

    def pending(self, destination: Optional[str] = None) -> int:
        """Records waiting, retrying or being sent (by any instance); the last count while Redis fails."""
        if destination is None:
            try:
                known = {_text(name) for name in self._client.smembers(f"{self.prefix}:destinations")}
            except _redis_errors() as error:
                self._outage.failed("counting", error)
                known = set()
            chosen = sorted(known | set(self._counted))
        else:
            chosen = [destination]
        for name in chosen:
            self._read_status(name)
        return sum(self._counted.get(name, 0) for name in chosen)

    def pending_now(self) -> Optional[int]:
        """``pending()`` as last counted (by the keeper, or a ``pending`` call): never waits for Redis."""
        counted = dict(self._counted)
        return sum(counted.values()) if counted else None

    def _read_status(self, destination: str) -> Optional[Tuple[int, int, int, Optional[float]]]:
        """(entries in the stream, of them being sent, retries, earliest retry's ms or None); None if Redis fails."""
        stream, delayed, _ = self._keys(destination)
        try:
            queued, taken, retries, first = self._status(keys=[stream, delayed], args=[GROUP])
        except _redis_errors() as error:
            self._outage.failed("counting", error)
            return None
        self._outage.answered()
        self._counted[destination] = int(queued) + int(retries)
        return int(queued), int(taken), int(retries), (float(first) if first else None)

    def heartbeat(self) -> None:
        """Nothing to do: a live instance shows itself by keeping its entries fresh (the keeper)."""

    def close(self) -> None:
        """Stop the keeper. What this process still holds is taken over by others ``reclaim_after``
        seconds later; the client stays open (it is the caller's)."""
        self._stopping.set()
        keeper = self._keeper
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(timeout=_DEFAULT_TIMEOUT * 2)

    # -- the keeper --------------------------------------------------------------------------------

    def _ensure_group(self, destination: str) -> None:
        """Make the destination's consumer group (and stream) once per process. From id 0, so entries
        added before it are read too: none is ever acknowledged without being deleted."""
        if destination in self._groups:
            return
        try:
            self._client.xgroup_create(self._key(destination, "stream"), GROUP, id="0", mkstream=True)
        except _no_group() as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._groups.add(destination)

    def _start_keeper(self) -> None:
        with self._lock:
            if self._keeper is not None or self._stopping.is_set():
                return
            self._keeper = threading.Thread(target=self._keep_fresh, name="playhooks-relay-redis-keeper", daemon=True)
            self._keeper.start()

    def _keep_fresh(self) -> None:
        """Every ``reclaim_after / 3`` seconds, reset the idle time of each entry in flight: two
        chances to fail before another instance takes this one for dead."""
        while not self._stopping.wait(self.reclaim_after / 3):
            try:
                self.refresh()
                if time.monotonic() >= self._next_sweep:
                    self._next_sweep = time.monotonic() + _FORGET_CONSUMERS_EVERY
                    self._forget_gone_consumers()
            except Exception as error:  # never let the keeper die: the entries would be taken over
                log.warning("playhooks relay: the redis keeper failed (%s); it carries on", type(error).__name__)

    def refresh(self) -> None:
        """Touch every entry this process holds in flight, and count each destination again."""
        with self._lock:
            by_destination: Dict[str, List[str]] = {}
            for flight in self._in_flight.values():
                by_destination.setdefault(flight.claim.destination, []).extend(
                    entry for entry in flight.ids.values() if entry not in flight.sent
                )
        for destination, entries in by_destination.items():
            if not entries:
                continue
            try:
                self._keep(keys=[self._key(destination, "stream")], args=[GROUP, self.consumer, *entries])
            except _redis_errors() as error:
                self._outage.failed("keeping records in flight", error)
        for destination in list(self._counted):
            self._read_status(destination)
        self.refreshes += 1

    def _forget_gone_consumers(self) -> None:
        """Remove consumers that hold nothing and have not read for an hour: finished processes, which
        would otherwise pile up in the group, one per relay start."""
        for destination in list(self._groups):
            stream = self._key(destination, "stream")
            try:
                for consumer in self._client.xinfo_consumers(stream, GROUP):
                    name = _text(consumer.get("name"))
                    if name != self.consumer and int(consumer.get("pending", 1)) == 0 and int(consumer.get("idle", 0)) > _CONSUMER_GONE_MS:
                        self._client.xgroup_delconsumer(stream, GROUP, name)
            except _redis_errors() as error:
                self._outage.failed("forgetting finished consumers", error)


class RedisRateLimiter:
    """A rate limit per key shared by every relay instance: at most ``limit`` requests per window.

    A fixed window, counted by one atomic script (``INCR``, and ``PEXPIRE`` on a window's first
    request): two instances never both let the last request through. The same ``check`` as
    ``RateLimiter``. While Redis fails it lets everything through (and says so once): a rate limit
    down must not take ingestion down with it.

    Args:
        client: a ``redis.Redis`` (see ``connect``).
        limit: requests allowed per window and key.
        window: the window, in seconds (whole milliseconds).
        prefix: the start of its keys.

    Raises:
        ValueError: a limit under 1 or a window under a millisecond.
    """

    def __init__(self, client: "redis.Redis", limit: int, window: float = 1.0, prefix: str = "playhooks") -> None:
        if type(limit) is not int or limit < 1:
            raise ValueError(f"rate limit: must be a whole number >= 1 (got {limit!r})")
        if not (isinstance(window, (int, float)) and math.isfinite(window) and window >= 0.001):
            raise ValueError(f"rate window: must be at least 0.001 seconds (got {window!r})")
        self.limit = limit
        self.window = window
        self.prefix = prefix
        self._script = client.register_script(_RATE)
        self._outage = _Outage()

    def check(self, key: str) -> Optional[int]:
        """Count a request for ``key`` (already hashed by the caller: never logged): None if allowed,
        else whole seconds to wait (at least 1), for a ``Retry-After``."""
        try:
            count, left_ms = self._script(keys=[f"{self.prefix}:rate:{key}"], args=[_millis(self.window)])
        except _redis_errors() as error:
            self._outage.failed("counting a rate limit (requests are let through meanwhile)", error)
            return None
        self._outage.answered()
        if int(count) <= self.limit:
            return None
        return max(1, math.ceil(int(left_ms) / 1000))


# -- helpers -------------------------------------------------------------------------------------


def _redis_errors() -> Tuple[type, ...]:
    """What a Redis call raises when Redis fails: imported here, as the module must import without redis."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)


def _no_group() -> type:
    from redis.exceptions import ResponseError

    return ResponseError


def _consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _parse(line: Any) -> Optional[Record]:
    """The record of a stored line, or None for an entry this module would not have written."""
    if not line:
        return None
    try:
        return Record.from_line(_text(line))
    except (ValueError, TypeError, RecursionError):
        return None


def _millis(seconds: float) -> int:
    return int(seconds * 1000) if math.isfinite(seconds) else 0


_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^@/\s]*@")


def _scrub(text: str) -> str:
    """``text`` without any URL's user and password."""
    return _USERINFO.sub(r"\1***@", text)


def _reason(error: BaseException) -> str:
    """A short reason for a Redis failure, with no password (redis-py quotes hosts, not URLs, but
    a proxy or a newer version might)."""
    detail = _scrub(str(error)).strip()
    name = type(error).__name__
    return f"{name}: {detail[:200]}" if detail and detail != name else name
