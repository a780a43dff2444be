"""Where the relay keeps what it accepted until the services have it, and what forwards it.

Two stores, one forwarding path. By default a spool on this machine's disk (one fsynced file per
request: the answer is sent after the fsync); with ``[redis]`` in the config, a Redis Stream that
every relay instance forwards from. Either way a tracker's own ``Sender`` forwards: one lane per
service, PlayCamp's sessions in bulk, each record retried with back-off until the service takes
it or refuses it (then it is a dead letter, counted).
"""

import functools
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import _owners
from .._retry import DELIVERED, Outcome, RetryPolicy
from .._sender import Sender
from .._services import DeliverySink, PlayCamp, PlayFab
from .._settings import _user_data_folder
from .._spool import Record, Spool, _remove
from .._stats import Counters, logger
from ._config import RelayConfig

HOUSEKEEPING_SECONDS = 30.0  # how often the spool is recounted and dead workers' claims taken back
UNAVAILABLE_RETRY_AFTER = 5  # seconds a client is asked to wait when the relay cannot store


class Unavailable(Exception):
    """The store cannot take payloads now (full, not writable, backend down): answer 503."""


class _GroupCommit:
    """Requests that arrive while a write is under way go to disk together, in the next write.

    Each request still waits for its own records to be fsynced before it is answered; but eight
    requests at once cost one file, one fsync and one rename between them rather than eight, which
    is most of what a request costs the relay. The first request to find no write under way writes
    for everyone waiting (no thread of its own): alone, a request pays no extra wait.
    """

    def __init__(self, write: Callable[[List[Record]], None]) -> None:
        self._write = write
        self._changed = threading.Condition()
        self._waiting: List["_Ticket"] = []
        self._writing = False

    def put(self, records: List[Record]) -> None:
        """Write ``records`` with whatever else waits; raise what the write raised."""
        ticket = _Ticket(records)
        with self._changed:
            self._waiting.append(ticket)
            while not ticket.done:
                if self._writing:
                    self._changed.wait()
                    continue
                batch, self._waiting = self._waiting, []
                self._writing = True
                self._changed.release()
                error: Optional[BaseException] = None
                try:
                    self._write([record for each in batch for record in each.records])
                except BaseException as failure:  # every request of the batch is answered with it
                    error = failure
                finally:
                    self._changed.acquire()
                    self._writing = False
                    for each in batch:
                        each.done, each.error = True, error
                    self._changed.notify_all()
        if ticket.error is not None:
            raise ticket.error


class _Ticket:
    __slots__ = ("records", "done", "error")

    def __init__(self, records: List[Record]) -> None:
        self.records = records
        self.done = False
        self.error: Optional[BaseException] = None


class _Counted(DeliverySink):
    """A service's sink, with each answer counted in the relay's metrics."""

    def __init__(self, sink: DeliverySink, count: Callable[..., None]) -> None:
        self._sink = sink
        self._count = count
        self.name, self.kinds = sink.name, sink.kinds
        self.max_batch, self.per_request = sink.max_batch, sink.per_request

    def prepare(self, data: Dict[str, Any]) -> Dict[str, Any]:
        return self._sink.prepare(data)

    def deliver(self, batch: List[Dict[str, Any]], transport: Any, stopping: Callable[[], bool] = lambda: False) -> Iterator[Outcome]:
        for outcome in self._sink.deliver(batch, transport, stopping):
            if outcome.kind == DELIVERED:
                self._count("forwarded", service=self.name)
            elif outcome.attempted:
                self._count("upstream_errors", service=self.name, status=str(outcome.status or "none"))
            yield outcome


def upstream_sinks(config: RelayConfig) -> List[DeliverySink]:
    """The services' sinks, holding the real secrets: the only place the relay uses them."""
    sinks: List[DeliverySink] = []
    playcamp = config.upstreams.get("playcamp")
    if playcamp is not None:
        sinks.append(PlayCamp(playcamp.secret, playcamp.url, is_test=playcamp.is_test))
    playfab = config.upstreams.get("playfab")
    if playfab is not None:
        sinks.append(PlayFab(playfab.title_id, playfab.secret, playfab.url))
    return sinks


class Store:
    """Accepted payloads, durably kept and forwarded.

    Args:
        config: the relay's configuration (its upstreams, bounds and backend).
        count: the metrics' ``count``.
        spool_dir: overrides the config's ``[spool] dir``.
        policy: retry rules towards the services.
    """

    def __init__(
        self,
        config: RelayConfig,
        count: Callable[..., None],
        spool_dir: Optional[str] = None,
        policy: Optional[RetryPolicy] = None,
    ) -> None:
        self.owner = _owners.new_owner()
        self._counters = Counters()
        self._sinks = {sink.name: _Counted(sink, count) for sink in upstream_sinks(config)}
        self._stopped = threading.Event()
        # The spool, or with Redis what the worker processes still share on this machine: their
        # heartbeats and their metrics' files.
        self.folder = os.path.abspath(spool_dir or config.spool_dir or _default_folder())
        if config.redis is not None:
            from ._redis import RedisQueue, connect

            self.redis = connect(config.redis.url)
            self.queue: Any = RedisQueue(
                self.redis, config.redis.prefix, self.owner, config.redis.reclaim_after, max_records=config.max_spool_records
            )
            os.makedirs(os.path.join(self.folder, "owners"), exist_ok=True)
            self._beat()
        else:
            self.redis = None
            self.queue = Spool(self.folder, self.owner, self._counters.drop, config.max_spool_records, config.max_spool_bytes)
            self._commits = {service: _GroupCommit(functools.partial(self._write, service)) for service in self._sinks}
        self._policy = policy or config.retry
        self._config = config
        self._sender: Optional[Sender] = None
        self._housekeeper: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start forwarding: what an earlier run left is sent too."""
        if isinstance(self.queue, Spool):
            self.queue.reclaim()  # a killed worker's claims, now or once its heartbeat is stale
        self._housekeeper = threading.Thread(target=self._keep_house, name="playhooks-relay-housekeeping", daemon=True)
        self._housekeeper.start()
        config = self._config
        self._sender = Sender(
            self.queue,
            list(self._sinks.values()),
            lambda: _transport(config),
            self._counters,
            self._policy,
            config.max_in_flight,
            on_exit=self._release,
        )

    def put(self, service: str, payloads: Sequence[Tuple[str, str, Dict[str, Any]]]) -> None:
        """Keep payloads, given as (id, kind, JSON), for ``service``; durable when it returns.

        Raises:
            Unavailable: nothing was kept (the spool is full or cannot be written, Redis is down).
        """
        sink = self._sinks[service]
        now = time.time()
        records = [Record(key, kind, sink.prepare(data), created=now) for key, kind, data in payloads]
        try:
            if isinstance(self.queue, Spool):
                self._commits[service].put(records)
            else:
                self.queue.put(service, records)
        except OSError as error:  # SpoolFull, a failing disk, and the Redis store's StoreUnavailable
            raise Unavailable(str(error) or type(error).__name__) from None
        if self._sender is not None:
            self._sender.kick()

    def _write(self, service: str, records: List[Record]) -> None:
        self.queue.store(service, records, due=time.time())

    def problems(self) -> List[str]:
        """Why the store cannot take payloads now; empty when it can."""
        if isinstance(self.queue, Spool):
            problem = self.queue.writable()
            if problem is None and self.queue.records >= self.queue.max_records:
                problem = "the spool is full"
            return [problem] if problem else []
        problem = self.queue.problem()
        if problem is None and max(self.queue.pending(service) for service in self._sinks) >= self._config.max_spool_records:
            problem = "the Redis queue is full"
        return [problem] if problem else []

    def owner_is_alive(self, owner: str) -> bool:
        """Whether the worker process ``owner`` still runs (by its heartbeat in the shared folder)."""
        path = os.path.join(self.folder, "owners", owner)
        try:
            age: Optional[float] = _owners.heartbeat_age(path, os.stat(path).st_mtime)
        except OSError:
            age = None
        return _owners.owner_is_alive(owner, age)

    def backlog(self) -> Iterator[Tuple[str, int, Optional[float]]]:
        """Per service: records waiting to be forwarded, and the age in seconds of the oldest."""
        now = time.time()
        for service in self._sinks:
            if isinstance(self.queue, Spool):
                oldest = self.queue.oldest_created(service)
                yield service, self.queue.pending(service), None if oldest is None else max(0.0, now - oldest)
            else:
                yield service, self.queue.pending(service), self.queue.oldest_age(service)

    def close(self, timeout: float) -> None:
        """Stop forwarding within ``timeout``: what is not sent stays for the next start."""
        self._stopped.set()
        if self._sender is None:
            self._release()
        else:
            self._sender.stop(timeout)

    def _release(self) -> None:
        """Forwarding has ended: only now may other workers take back what this one claimed (a
        request that outlived ``close`` settles first, on its own thread, as a tracker's does)."""
        self.queue.close()
        if self.redis is not None:
            self.redis.close()
            _remove(os.path.join(self.folder, "owners", self.owner))
        _owners.retire_owner(self.owner)

    def _keep_house(self) -> None:
        while not self._stopped.wait(_owners.HEARTBEAT_SECONDS if self.redis is not None else HOUSEKEEPING_SECONDS):
            try:
                if self.redis is not None:
                    self._beat()
                    continue
                self.queue.recount()
                self.queue.reclaim()
                self.queue.retry_disk()
            except Exception:  # a hostile disk must not end forwarding
                logger().exception("playhooks relay: housekeeping failed")

    def _beat(self) -> None:
        try:
            _owners.beat(os.path.join(self.folder, "owners", self.owner))
        except OSError:
            pass  # only the metrics' files of ended workers wait longer to be taken in


def _transport(config: RelayConfig) -> Any:
    from .._transport import Transport

    return Transport(config.connect_timeout, config.read_timeout, config.max_in_flight)


def _default_folder() -> str:
    """``playhooks/relay`` in the user's data folder: the same for every server and worker."""
    return os.path.join(_user_data_folder(), "playhooks", "relay")
