"""The durable spool: payloads on disk from the moment they are accepted until a service has them.

Plain files, so it works without ``sqlite3`` (Ren'Py has none) and survives crashes and power cuts::

    SPOOL/
      <destination>/queue/<due ms>-<count>-<created ms>-<id>.jsonl   records waiting to be sent
      <destination>/claimed/<owner>~<file name>            records a sender is sending now
      <destination>/sent/<owner>~<file name>               ids of a claim's records already delivered
      dead/<destination>~<file name>                        records a service refused, or given up on
      quarantine/<file name>                                files that could not be read
      sessions/<session id>.json                            checkpoints of open sessions
      owners/<owner>                                        each live tracker's heartbeat
      tmp/                                                  files being written

- Every write is atomic: a temporary file, fsync, rename (and an fsync of the folder on POSIX), so
  a file is either whole or absent.
- A file holds the records of one worker round, so a round costs one fsync whatever it holds. The
  name starts with the millisecond the records are due, so a sorted listing is the order to send
  in; it says how many records the file holds, so counting reads no file, and when the oldest of
  them was accepted, which is what the bounds drop first. A name whose numbers cannot be true (more
  records than its bytes could hold) is quarantined, so it never drives the bounds.
- A sender claims a file by renaming it into ``claimed/`` under its owner id: a rename succeeds
  for one process only, so two processes sharing a spool never send the same record at once. As
  each record is delivered its id is noted in ``sent/``, so a claim taken back from a process that
  stopped mid-claim is resent without what had already gone. Files claimed by an owner that is gone
  (see ``_owners``) are put back in the queue.
- The process keeps an index of each queue (names, counts, sizes, in due order), in step with
  what it writes and takes, so counting and claiming cost the same with ten files waiting or ten
  thousand. The queue is listed again when its folder's modification time says someone else
  changed it, and in full every ``recount`` (at start, then every half minute).
- Limits on records and bytes, totalled from the index and checked as records are written: past
  them dead letters go first, then the oldest files, events before sessions (sessions are the
  playtime itself), each record counted as ``spool_full``.
- A disk that fails (full, read-only, the folder deleted or replaced by a file) loses nothing
  already accepted: what cannot be written is held in memory, sent from there with the same
  retries, and written out as soon as the disk takes writes again. ``problem`` says why meanwhile.
"""

import bisect
import functools
import json
import logging
import math
import os
import re
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import attrs

from ._owners import HEARTBEAT_SECONDS, STALE_OWNER_SECONDS, beat, heartbeat_age, owner_is_alive
from ._settings import DEFAULT_MAX_SPOOL_BYTES, DEFAULT_MAX_SPOOL_RECORDS
from ._stats import SPOOL_FULL

__all__ = ["HEARTBEAT_SECONDS", "STALE_OWNER_SECONDS", "Claim", "Record", "Spool", "SpoolFull"]

log = logging.getLogger("playhooks")

_CLOCK_SET_BACK = 2 * 3600.0  # no retry waits this long, so a record due later than this is due now
_SEPARATOR = "~"
_FOLDERS = frozenset({"dead", "quarantine", "sessions", "owners", "tmp"})
_RESERVED = _FOLDERS | {"metrics"}  # names no destination may take (a relay keeps its metrics there)
_NAME = re.compile(r"([0-9]{1,15})-([0-9]{1,9})-([0-9]{1,15})-[0-9a-z]{1,32}\.jsonl")
_MIN_RECORD_BYTES = 16  # '{"id":"","data":{}}' and a newline: no record is shorter
_MAX_ATTEMPTS = 10**6
_DISK_RETRY_SECONDS = 1.0  # how often a failed disk is tried again
_GIL_SLICE = 64  # records encoded or read between two pauses for the game's thread (about half a millisecond)


class SpoolFull(OSError):
    """``Spool.store`` refused records: they would take the spool past a bound."""


@attrs.define
class Record:
    """One payload for one destination, as the spool keeps it."""

    id: str
    kind: str
    data: Dict[str, Any]
    attempts: int = 0
    created: float = 0.0
    error: Optional[str] = None

    def to_line(self) -> str:
        fields = {"id": self.id, "kind": self.kind, "data": self.data, "attempts": self.attempts, "created": self.created}
        if self.error:
            fields["error"] = self.error
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"

    @classmethod
    def from_line(cls, line: str) -> "Record":
        """The record of one line; ``ValueError`` for anything this module would not have written."""
        fields = json.loads(line)
        if not (isinstance(fields, dict) and isinstance(fields.get("data"), dict) and isinstance(fields.get("id"), str)):
            raise ValueError("not a spool record")
        attempts, created = fields.get("attempts", 0), fields.get("created", 0.0)
        error, kind = fields.get("error"), fields.get("kind", "")
        if type(attempts) is not int or not 0 <= attempts < _MAX_ATTEMPTS:
            raise ValueError("attempts out of range")
        if type(created) not in (int, float) or not math.isfinite(created):
            raise ValueError("created is not a time")
        if not (error is None or isinstance(error, str)) or not isinstance(kind, str):
            raise ValueError("not a spool record")
        return cls(id=fields["id"], kind=kind, data=fields["data"], attempts=attempts, created=float(created), error=error)


@attrs.frozen
class Claim:
    """Records taken from the queue by this process, to send and then settle.

    ``path`` is None for records held in memory because the disk would not take them.
    """

    destination: str
    path: Optional[str]
    records: Tuple[Record, ...]
    name: str = ""
    size: int = 0


class _Queue:
    """One destination's queue files as this process knows them, in the order to send them."""

    def __init__(self) -> None:
        self.files: Dict[str, Tuple[int, int, int, int]] = {}  # name -> (due ms, records, created ms, bytes)
        self.order: List[Tuple[int, str]] = []  # (due ms, name), sorted
        self.records = 0
        self.bytes = 0
        self.seen: Optional[int] = None  # the folder's modification time when the index last matched it

    def add(self, name: str, due_ms: int, count: int, created: int, size: int) -> None:
        if name in self.files:
            return
        self.files[name] = (due_ms, count, created, size)
        bisect.insort(self.order, (due_ms, name))
        self.records += count
        self.bytes += size

    def remove(self, name: str) -> Tuple[int, int, int, int]:
        entry = self.files.pop(name)
        del self.order[bisect.bisect_left(self.order, (entry[0], name))]
        self.records -= entry[1]
        self.bytes -= entry[3]
        return entry


@attrs.define
class _Held:
    """A file's worth of records the disk would not take, kept until it does."""

    name: str
    data: bytes
    records: List[Record]


class Spool:
    """A spool directory, as one tracker (``owner``) uses it. Thread-safe.

    Args:
        directory: the folder; made if missing.
        owner: this tracker's id, from ``_owners.new_owner``.
        drop: called with (reason, detail, how many records) for each record dropped.
        max_records, max_bytes: the bounds past which the oldest records are dropped.
        expendable: destinations whose records go first when over the bounds (events).
        now: the clock due and created times are read from (see ``_clock.steady_wall``).
    """

    def __init__(
        self,
        directory: str,
        owner: str,
        drop: Callable[[str, str, int], None],
        max_records: int = DEFAULT_MAX_SPOOL_RECORDS,
        max_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
        expendable: Sequence[str] = (),
        now: Callable[[], float] = time.time,
    ) -> None:
        self.directory = os.path.abspath(directory)
        self.owner = owner
        self._drop = drop
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.expendable = list(expendable)
        self._now = now
        self.quarantined = 0
        self.problem: Optional[str] = None  # why the disk is not being used, while it is not
        self._lock = threading.RLock()
        self._held: Dict[str, List[_Held]] = {}  # per destination, oldest first
        self._held_dead: List[Tuple[str, bytes]] = []
        self._unremoved: Set[str] = set()  # settled claims the disk would not let go of
        self._in_flight: Dict[int, Tuple[Claim, int]] = {}  # id(claim) -> (claim, records delivered so far)
        self._opening: Dict[str, Tuple[int, int]] = {}  # claimed path -> (records, bytes), until it is read
        self._journals: Dict[int, int] = {}  # id(claim) -> descriptor of its open journal in sent/
        self._next_disk_retry = 0.0
        self._queues: Dict[str, _Queue] = {}
        self._root_seen: Optional[int] = None
        self._claimed_elsewhere: Dict[str, Tuple[int, int]] = {}  # per destination: (records, bytes), as last counted
        self._claimed_seen: Dict[str, Optional[int]] = {}  # per destination: claimed/'s time when counted
        self._dead: Dict[str, int] = {}  # dead letter path -> bytes
        try:
            self._make_folders()
            self.heartbeat()
        except OSError as error:
            self._disk_failed(error)
        self.recount()

    # -- writing ---------------------------------------------------------------------------------

    def put(self, destination: str, records: Sequence[Record], due: float) -> bool:
        """Add records, due to be sent at time ``due``, in one atomic file (or held, if the disk fails).

        A record that cannot be encoded is dropped alone, counted as ``invalid_<kind>``.

        Returns:
            whether they reached the disk (False: held in memory, or nothing to write).
        """
        lines, kept = [], []
        for number, record in enumerate(records, start=1):
            if number % _GIL_SLICE == 0:
                time.sleep(0)  # a burst's round: let the game's thread have the interpreter lock
            try:
                lines.append(record.to_line().encode("utf-8"))
                kept.append(record)
            except (TypeError, ValueError, OverflowError, RecursionError) as error:
                self._drop(f"invalid_{record.kind}", f"cannot be written ({type(error).__name__})", 1)
        if not kept:
            return False
        on_disk = self._write_or_hold(destination, _queue_name(due, kept), b"".join(lines), kept)
        self.enforce_limits()
        return on_disk

    def store(self, destination: str, records: Sequence[Record], due: float) -> None:
        """Write records in one atomic, fsynced file, or raise: never hold them, never drop others.

        For a relay, which may answer a client 2xx only for what is on disk: ``put`` would keep
        what the disk refuses in memory and make room by dropping the oldest records, both of
        which a client that was told "stored" must never pay for.

        Raises:
            SpoolFull: the records would take the spool past a bound.
            OSError: the disk would not take them; nothing was written.
            ValueError: a record cannot be encoded (its data is not JSON).
        """
        data = b"".join(record.to_line().encode("utf-8") for record in records)
        for last_try in (False, True):
            with self._lock:
                if self.records + len(records) <= self.max_records and self.bytes + len(data) <= self.max_bytes:
                    break
            if last_try:
                raise SpoolFull(f"the spool holds {self.max_records} records or {self.max_bytes} bytes at most")
            # Dead letters make room (oldest first, counted), so a long outage's refusals never
            # leave the relay refusing everything after; records waiting to be sent never do.
            self.enforce_limits(dead_only=True, room=(len(records), len(data)))
        self._write(self._queue_folder(destination), _queue_name(due, records), data, destination)

    def writable(self) -> Optional[str]:
        """None if a file can be written and removed in the spool now; else why not."""
        probe = os.path.join(self.directory, "tmp", f"{self.owner}{_SEPARATOR}probe")
        try:
            with open(probe, "wb") as file:
                file.write(b"probe")
            os.remove(probe)
        except OSError as error:
            return f"cannot write {self.directory} ({error.strerror or type(error).__name__})"
        return None

    def oldest_created(self, destination: str) -> Optional[float]:
        """When the oldest record waiting for ``destination`` was accepted (wall seconds), or None."""
        with self._lock:
            queue = self._queue(destination)
            created = [created for _, _, created, _ in queue.files.values()]
            created += [_parse_name(entry.name)[2] for entry in self._held.get(destination, [])]
        return min(created) / 1000 if created else None

    def _write_or_hold(self, destination: str, name: str, data: bytes, records: List[Record]) -> bool:
        """Write a queue file; if the disk fails, hold it in memory. True if it reached the disk."""
        try:
            self._write(os.path.join(self.directory, destination, "queue"), name, data, destination)
            return True
        except OSError as error:
            self._disk_failed(error)
            with self._lock:
                self._hold(destination, _Held(name, data, records))
            return False

    def _hold(self, destination: str, entry: _Held) -> None:
        held = self._held.setdefault(destination, [])
        held.append(entry)
        held.sort(key=lambda each: each.name)

    def _write(self, folder: str, name: str, data: bytes, queue_of: Optional[str] = None) -> None:
        """Write ``data`` to ``folder/name`` atomically; into ``queue_of``'s queue, indexed too."""
        temporary = os.path.join(self.directory, "tmp", f"{self.owner}{_SEPARATOR}{name}")
        for last_try in (False, True):
            try:
                with open(temporary, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                if queue_of is None:
                    os.replace(temporary, os.path.join(folder, name))
                else:
                    self._enqueue(queue_of, temporary, name, len(data))
                _fsync_folder(folder)
                return
            except FileNotFoundError:
                _remove(temporary)
                if last_try:
                    raise
                self._make_folders(folder)  # deleted under us: make it again, once
            except OSError:
                _remove(temporary)  # a full disk must not also fill tmp/ with halves
                raise

    def _make_folders(self, *more: str) -> None:
        for folder in (*(os.path.join(self.directory, part) for part in sorted(_FOLDERS)), *more):
            os.makedirs(folder, exist_ok=True)

    def _disk_failed(self, error: OSError) -> None:
        reason = f"cannot write {self.directory} ({error.strerror or type(error).__name__}): holding payloads in memory"
        with self._lock:
            first = self.problem is None
            self.problem = reason
            self._next_disk_retry = time.monotonic() + _DISK_RETRY_SECONDS
        if first:
            log.warning("playhooks spool: %s", reason)

    def retry_disk(self, at_once: bool = False) -> None:
        """Write out what the disk refused before, if it takes writes again (at most once a
        second, unless ``at_once``: a flush)."""
        with self._lock:
            if self.problem is None or (time.monotonic() < self._next_disk_retry and not at_once):
                return
            self._next_disk_retry = time.monotonic() + _DISK_RETRY_SECONDS
            held = [(destination, entry) for destination, entries in self._held.items() for entry in entries]
            dead, self._held_dead = self._held_dead, []
            unremoved = set(self._unremoved)
        try:
            self._make_folders()
            self.heartbeat()
            for path in unremoved:
                if _remove(path) or not os.path.exists(path):
                    self._unremoved.discard(path)
            for destination, entry in held:
                with self._lock:  # written and let go of at once: never both held and queued
                    if entry not in self._held.get(destination, []):
                        continue  # claimed meanwhile: sent from memory
                    self._write(os.path.join(self.directory, destination, "queue"), entry.name, entry.data, destination)
                    self._unhold(destination, entry)
            while dead:
                self._write(os.path.join(self.directory, "dead"), *dead[0])
                with self._lock:
                    self._dead[os.path.join(self.directory, "dead", dead[0][0])] = len(dead[0][1])
                dead.pop(0)
        except OSError as error:
            with self._lock:
                self._held_dead = dead + self._held_dead
            self._disk_failed(error)
            return
        with self._lock:
            recovered = not self._unremoved and not any(self._held.values()) and not self._held_dead
            if recovered:
                self.problem = None
        if recovered:
            log.warning("playhooks spool: %s takes writes again", self.directory)

    # -- the queues' index -----------------------------------------------------------------------

    def _queue(self, destination: str) -> "_Queue":
        """The index of ``destination``'s queue (the lock held), listed again if someone else changed it."""
        queue = self._queues.get(destination)
        if queue is None or queue.seen != _modified(self._queue_folder(destination)):
            queue = self._reindex(destination)
        return queue

    def _reindex(self, destination: str) -> "_Queue":
        """List ``destination``'s queue into a new index (the lock held); quarantine what no spool wrote."""
        folder = self._queue_folder(destination)
        queue = _Queue()
        for path, name, stat in _stat_files(folder):
            due_ms, count, created = _parse_name(name)
            if due_ms is None or count * _MIN_RECORD_BYTES > stat.st_size:  # a name no file of ours would have
                self._quarantine(path, name)
                continue
            queue.add(name, due_ms, count, created, stat.st_size)
        queue.seen = _modified(folder)
        self._queues[destination] = queue
        return queue

    def _enqueue(self, destination: str, source: str, name: str, size: int) -> None:
        """Rename a file into ``destination``'s queue as ``name`` and index it, at once."""
        folder = self._queue_folder(destination)
        with self._lock:
            queue = self._queue(destination)
            try:
                os.replace(source, os.path.join(folder, name))
            except FileNotFoundError:
                if not os.path.exists(source):
                    raise
                os.makedirs(folder, exist_ok=True)  # deleted under us
                os.replace(source, os.path.join(folder, name))
            due_ms, count, created = _parse_name(name)
            queue.add(name, due_ms or 0, count, created, size)
            queue.seen = _modified(folder)

    def _queue_folder(self, destination: str) -> str:
        return os.path.join(self.directory, destination, "queue")

    # -- sending ---------------------------------------------------------------------------------

    def claim_due(self, destination: str, now: float, max_records: int) -> List[Claim]:
        """Take files whose records are due, oldest first, up to about ``max_records`` records."""
        claims: List[Claim] = []
        taken = 0
        while True:
            with self._lock:
                entry, name, count = self._first_due(destination, now)
                if name is None or (claims and taken + count > max_records):
                    break
                claim: Optional[Claim] = None
                if entry is not None:
                    claim = self._claim_held(destination, entry)
                    path = None
                else:
                    path = self._take_file(destination, name)
            if path is not None:
                claim = self._open_claim(destination, path, name, count)
            if claim is not None:
                claims.append(claim)
                taken += len(claim.records)
        return claims

    def _first_due(self, destination: str, now: float) -> Tuple[Optional["_Held"], Optional[str], int]:
        """The next due file (the lock held): (held entry or None, name, records), or a name of None.

        A due time much later than any wait means the wall clock was set back: due now.
        """
        def due(due_ms: int) -> bool:
            return due_ms / 1000 <= now or due_ms / 1000 >= now + _CLOCK_SET_BACK

        for entry in self._held.get(destination, []):  # only while the disk fails: a few
            due_ms, count, _ = _parse_name(entry.name)
            if due(due_ms or 0):
                return entry, entry.name, count
        queue = self._queue(destination)
        for due_ms, name in queue.order[:1] + queue.order[-1:]:
            if due(due_ms):
                return None, name, queue.files[name][1]
        return None, None, 0

    def _claim_held(self, destination: str, entry: _Held) -> Optional[Claim]:
        with self._lock:
            if not self._unhold(destination, entry):
                return None
            claim = Claim(destination, None, tuple(entry.records), entry.name, len(entry.data))
            self._in_flight[id(claim)] = (claim, 0)
        return claim

    def _take_file(self, destination: str, name: str) -> Optional[str]:
        """Rename a queued file into ``claimed/`` (the lock held): its path there, or None if
        another process took it first or the disk refuses."""
        queue = self._queues[destination]
        entry = queue.remove(name)
        folder = self._queue_folder(destination)
        claimed_folder = os.path.join(self.directory, destination, "claimed")
        source, claimed = os.path.join(folder, name), os.path.join(claimed_folder, f"{self.owner}{_SEPARATOR}{name}")
        try:
            try:
                os.rename(source, claimed)
            except FileNotFoundError:
                if not os.path.exists(source):
                    return None  # another process claimed it first
                os.makedirs(claimed_folder, exist_ok=True)  # deleted under us
                os.rename(source, claimed)
        except FileNotFoundError:
            return None
        except OSError as error:  # a read-only folder: it stays queued, for when the disk recovers
            queue.add(name, *entry)
            self._disk_failed(error)
            return None
        finally:
            queue.seen = _modified(folder)
        self._opening[claimed] = (entry[1], entry[3])  # still counted while it is read, outside the lock
        return claimed

    def _open_claim(self, destination: str, claimed: str, name: str, count: int) -> Optional[Claim]:
        try:
            records, size = self._read(claimed, name)
            if records is None:
                return None
            if len(records) != count:  # the name does not tell the truth: not a file this spool wrote
                log.warning("spool file %s holds %d records, not %d: quarantined", name, len(records), count)
                self._quarantine(claimed, name)
                return None
            claim = Claim(destination, claimed, tuple(records), name, size)
            with self._lock:
                self._in_flight[id(claim)] = (claim, 0)
            return claim
        finally:
            with self._lock:
                self._opening.pop(claimed, None)

    def _read(self, path: str, name: str) -> Tuple[Optional[List[Record]], int]:
        try:
            with open(path, "rb") as file:
                data = file.read()
            records = []
            for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
                if number % _GIL_SLICE == 0:
                    time.sleep(0)
                if line.strip():
                    records.append(Record.from_line(line))
            if not records:
                raise ValueError("empty")
            return records, len(data)
        except FileNotFoundError:  # another process took it back first
            return None, 0
        except (OSError, ValueError, TypeError, OverflowError, RecursionError) as error:
            log.warning("spool file %s is unreadable (%s): quarantined", name, type(error).__name__)
            self._quarantine(path, name)
            return None, 0

    def _quarantine(self, path: str, name: str) -> None:
        try:
            os.replace(path, os.path.join(self.directory, "quarantine", f"{int(time.time())}{_SEPARATOR}{name}"))
        except OSError:
            return
        self.quarantined += 1

    def mark_sent(self, claim: Claim, record: Record) -> None:
        """Note that ``record`` of ``claim`` was delivered, as soon as it was: if this process stops
        before the claim is settled, whoever takes the claim back does not send it again."""
        with self._lock:  # and the write too: a journal closed meanwhile could be another file's descriptor
            if id(claim) not in self._in_flight:
                return
            self._in_flight[id(claim)] = (claim, self._in_flight[id(claim)][1] + 1)
            if claim.path is None:
                return
            try:
                journal = self._journals.get(id(claim))
                if journal is None:
                    journal = self._journals[id(claim)] = _open_journal(self._journal_path(claim))
                os.write(journal, (record.id + "\n").encode("utf-8"))  # no fsync: the kernel keeps it past the process's end
            except OSError:
                pass  # at worst, resent after a crash: the guarantee is at-least-once

    def _close_journal(self, claim: Claim) -> None:
        """Close a claim's journal before it is removed (Windows removes no open file)."""
        with self._lock:
            journal = self._journals.pop(id(claim), None)
        if journal is not None:
            os.close(journal)

    def settle(self, claim: Claim, retry: Sequence[Tuple[Record, float]], dead: Sequence[Record]) -> None:
        """Finish a claim: records to retry go back to the queue with their due times, the dead to
        ``dead/``; the rest were delivered.

        The claimed file itself is rewritten to hold what is retried and renamed back into the
        queue, so a crash at any point leaves each record in one file, never two (records with
        other due times than the last go in files of their own first). Dead letters are written
        before, so a crash may keep one twice, never lose it. The claim counts as pending until
        its records are back in the queue: a flush meanwhile never sees too few.
        """
        with self._lock:
            if id(claim) not in self._in_flight:
                return
        self._close_journal(claim)
        if claim.path is not None and not os.path.exists(claim.path):
            self._forget(claim)
            return  # taken back (this tracker was closed mid-send): whoever took it sends it
        if dead:
            self._bury(claim.destination, dead)
        by_due: Dict[int, List[Record]] = {}
        for record, due in retry:
            by_due.setdefault(_millis(due), []).append(record)
        groups = sorted(by_due.items())
        last = groups.pop() if groups else None
        for due_ms, records in groups:
            self.put(claim.destination, records, due_ms / 1000)
        if claim.path is None:
            if last is not None:
                self.put(claim.destination, last[1], last[0] / 1000)
        elif last is None:
            self._let_go(claim.path)
            _remove(self._journal_path(claim))
        else:
            self._requeue(claim, claim.path, last[1], last[0] / 1000)
        self._forget(claim)

    def _forget(self, claim: Claim) -> None:
        with self._lock:
            self._in_flight.pop(id(claim), None)

    def _requeue(self, claim: Claim, path: str, records: List[Record], due: float) -> None:
        """Rewrite the claimed file at ``path`` to hold ``records``, then rename it into the queue."""
        data = _encode(records)
        name = _queue_name(due, records)
        try:
            self._write(os.path.dirname(path), os.path.basename(path), data)
            _remove(self._journal_path(claim))  # what it listed is no longer in the file
            self._enqueue(claim.destination, path, name, len(data))
            _fsync_folder(self._queue_folder(claim.destination))
        except OSError as error:  # held, and the claimed file goes once the disk lets it
            self._disk_failed(error)
            with self._lock:
                self._hold(claim.destination, _Held(name, data, records))
                self._unremoved.add(path)

    def _bury(self, destination: str, dead: Sequence[Record]) -> None:
        name = f"{destination}{_SEPARATOR}{_millis(time.time()):013d}-{len(dead)}-{os.urandom(6).hex()}.jsonl"
        data = _encode(dead)
        try:
            self._write(os.path.join(self.directory, "dead"), name, data)
            with self._lock:
                self._dead[os.path.join(self.directory, "dead", name)] = len(data)
        except OSError as error:
            self._disk_failed(error)
            with self._lock:
                self._held_dead.append((name, data))

    def _let_go(self, path: str) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as error:  # a read-only folder: removed when the disk recovers
            self._disk_failed(error)
            with self._lock:
                self._unremoved.add(path)

    def _journal_path(self, claim: Claim) -> str:
        return os.path.join(self.directory, claim.destination, "sent", os.path.basename(claim.path or ""))

    def release(self, claim: Claim) -> None:
        """Put a claim back in the queue untouched (the tracker is stopping mid-send, or the sink failed)."""
        with self._lock:
            if id(claim) not in self._in_flight:
                return
        self._close_journal(claim)
        try:
            if claim.path is not None:
                try:
                    self._enqueue(claim.destination, claim.path, claim.name, claim.size)
                    _remove(self._journal_path(claim))
                    return
                except OSError as error:  # hold the records; the claimed file goes once the disk lets it
                    self._disk_failed(error)
                    with self._lock:
                        self._unremoved.add(claim.path)
            data = _encode(claim.records)
            with self._lock:
                self._hold(claim.destination, _Held(claim.name, data, list(claim.records)))
        finally:
            self._forget(claim)

    # -- looking after the spool -----------------------------------------------------------------

    def destinations(self) -> List[str]:
        with self._lock:
            root = _modified(self.directory)
            if root != self._root_seen:  # a destination's folder made or removed (by another process)
                self._root_seen = root
                for destination in _list_destinations(self.directory):
                    self._queue(destination)
            known = {name for name, queue in self._queues.items() if queue.files or queue.seen is not None}
            return sorted(known | {name for name, entries in self._held.items() if entries})

    def pending(self, destination: Optional[str] = None) -> int:
        """Records waiting or being sent, less those of this process's claims already delivered."""
        with self._lock:
            chosen = [destination] if destination else self.destinations()
            for name in chosen:
                self._count_claimed_elsewhere(name)
            return self._count(chosen, destination, [self._queue(name) for name in chosen])

    def pending_now(self) -> Optional[int]:
        """``pending()`` as the index stands, never waiting for the lock nor reading the disk (for
        ``stats()``, on the game's thread); None while the spool is busy."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            chosen = sorted(set(self._queues) | set(self._held))
            return self._count(chosen, None, [self._queues[name] for name in chosen if name in self._queues])
        finally:
            self._lock.release()

    def _count(self, chosen: List[str], destination: Optional[str], queues: List["_Queue"]) -> int:
        with self._lock:
            total = sum(queue.records for queue in queues)
            total += sum(self._claimed_elsewhere.get(name, (0, 0))[0] for name in chosen)
            total += sum(len(entry.records) for name in chosen for entry in self._held.get(name, []))
            total += sum(
                len(claim.records) - delivered
                for claim, delivered in self._in_flight.values()
                if destination in (None, claim.destination)
            )
            total += sum(count for path, (count, _) in self._opening.items() if destination in (None, _destination_of(path)))
        return max(0, total)

    @property
    def records(self) -> int:
        """Records queued, claimed (by anyone) or held: what the bounds count."""
        with self._lock:
            return self.pending() + sum(delivered for _, delivered in self._in_flight.values())

    @property
    def bytes(self) -> int:
        """Bytes of the same, and of the dead letters."""
        with self._lock:
            size = sum(queue.bytes for queue in self._queues.values())
            size += sum(bytes_ for _, bytes_ in self._claimed_elsewhere.values())
            size += sum(len(entry.data) for entries in self._held.values() for entry in entries)
            size += sum(claim.size for claim, _ in self._in_flight.values())
            size += sum(bytes_ for _, bytes_ in self._opening.values())
            return size + sum(self._dead.values()) + sum(len(data) for _, data in self._held_dead)

    def next_due(self, destination: str) -> Optional[float]:
        """When the earliest waiting record of ``destination`` is due, or None if none waits."""
        with self._lock:
            queue = self._queue(destination)
            dues = [due_ms for due_ms, _ in queue.order[:1]]
            dues += [_parse_name(entry.name)[0] or 0 for entry in self._held.get(destination, [])]
        return min(dues) / 1000 if dues else None

    def reclaim(self) -> int:
        """Return to the queue what dead owners had claimed, less what they had already delivered,
        and clear their temporary files."""
        ages = self._heartbeat_ages()
        returned = 0
        for destination in _list_destinations(self.directory):
            claimed = os.path.join(self.directory, destination, "claimed")
            sent = os.path.join(self.directory, destination, "sent")
            for name in _list(claimed):
                owner, _, original = name.partition(_SEPARATOR)
                if original and not owner_is_alive(owner, ages.get(owner)):
                    if self._return(destination, os.path.join(claimed, name), os.path.join(sent, name), original):
                        returned += 1
            for name in _list(sent):
                owner = name.partition(_SEPARATOR)[0]
                if not os.path.exists(os.path.join(claimed, name)) and not owner_is_alive(owner, ages.get(owner)):
                    _remove(os.path.join(sent, name))
        tmp = os.path.join(self.directory, "tmp")
        for name in _list(tmp):
            owner = name.partition(_SEPARATOR)[0]
            if not owner_is_alive(owner, ages.get(owner)):
                _remove(os.path.join(tmp, name))
        for owner in ages:
            if not owner_is_alive(owner, ages[owner]):
                _remove(os.path.join(self.directory, "owners", owner))
        if returned:
            self.recount()
        return returned

    def _return(self, destination: str, claimed: str, journal: str, original: str) -> bool:
        """Put a dead owner's claim back in the queue, without the records it had delivered.

        The file may hold fewer records than its name says: ``_requeue`` rewrites a claimed file,
        then renames it, and its owner may have died in between. It goes back under a name that
        tells the truth, which the reader checks.
        """
        try:
            with open(journal, encoding="utf-8") as file:
                delivered = set(file.read().split())
        except OSError:
            delivered = set()
        try:
            records, _ = self._read(claimed, original)
            if records is None:
                return False
            due, count, _ = _parse_name(original)
            due_at = due / 1000 if due is not None else self._now()
            if not delivered:
                name = original if len(records) == count else _queue_name(due_at, records)
                self._enqueue(destination, claimed, name, _size(claimed))
                return True
            left = [record for record in records if record.id not in delivered]
            if left:
                self.put(destination, left, due_at)
            os.remove(claimed)
            _remove(journal)
            return True
        except OSError:
            return False  # another process reclaimed it

    def recount(self) -> None:
        """Read every queue, claimed folder and the dead letters from disk again: other processes
        write too, and a folder's modification time may not show it (a coarse clock)."""
        with self._lock:
            for destination in set(_list_destinations(self.directory)) | set(self._queues):
                self._reindex(destination)
                self._count_claimed_elsewhere(destination, again=True)
            self._dead = {path: stat.st_size for path, _, stat in _stat_files(os.path.join(self.directory, "dead"))}

    def _count_claimed_elsewhere(self, destination: str, again: bool = False) -> None:
        """Count what other processes are sending (the lock held), when ``claimed/`` changed since:
        a small folder, of what is in flight."""
        folder = os.path.join(self.directory, destination, "claimed")
        modified = _modified(folder)
        if not again and self._claimed_seen.get(destination, -1) == modified:
            return
        own = self.owner + _SEPARATOR  # this process's claims are counted from memory: no stat for them
        elsewhere = [
            (_parse_name(name.split(_SEPARATOR)[-1])[1], stat.st_size)
            for path, name, stat in _stat_files(folder, skip=lambda name: name.startswith(own))
            if path not in self._unremoved
        ]
        self._claimed_elsewhere[destination] = (sum(count for count, _ in elsewhere), sum(size for _, size in elsewhere))
        self._claimed_seen[destination] = modified

    def enforce_limits(
        self, expendable: Optional[Sequence[str]] = None, dead_only: bool = False, room: Tuple[int, int] = (0, 0)
    ) -> None:
        """Drop the oldest waiting files while over a bound: dead letters first, then from the
        ``expendable`` destinations. Files being sent count towards the bounds but are not dropped.
        ``dead_only``: drop dead letters alone; ``room``: (records, bytes) to make room for too.
        """
        records, size = self.records + room[0], self.bytes + room[1]
        if records <= self.max_records and size <= self.max_bytes:
            return
        expendable = self.expendable if expendable is None else expendable
        with self._lock:
            # (rank, created ms, name, records, bytes, how to remove it): the first five sort
            candidates: List[Tuple[int, int, str, int, int, Callable[[], bool]]] = [
                (-1, 0, path, 0, size, functools.partial(self._remove_dead, path)) for path, size in self._dead.items()
            ]
            for destination, queue in ({} if dead_only else self._queues).items():
                rank = 0 if destination in expendable else 1
                for name, (_, count, created, bytes_) in queue.files.items():
                    candidates.append((rank, created, name, count, bytes_, functools.partial(self._remove_queued, destination, name)))
            for destination, entries in ({} if dead_only else self._held).items():
                rank = 0 if destination in expendable else 1
                for entry in entries:
                    forget = functools.partial(self._unhold, destination, entry)
                    candidates.append((rank, _parse_name(entry.name)[2], entry.name, len(entry.records), len(entry.data), forget))
        candidates.sort(key=_order)
        for _, _, name, count, bytes_, forget in candidates:
            if records <= self.max_records and size <= self.max_bytes:
                break
            if not forget():
                continue  # claimed or dropped meanwhile
            records, size = records - count, size - bytes_
            if count:
                self._drop(SPOOL_FULL, f"the spool is over its bounds: dropped {os.path.basename(name)}", count)

    def _remove_queued(self, destination: str, name: str) -> bool:
        with self._lock:
            queue = self._queues[destination]
            if name not in queue.files or not _remove(os.path.join(self._queue_folder(destination), name)):
                return False
            queue.remove(name)
            queue.seen = _modified(self._queue_folder(destination))
            return True

    def _remove_dead(self, path: str) -> bool:
        with self._lock:
            self._dead.pop(path, None)
        return _remove(path)

    def _unhold(self, destination: str, entry: _Held) -> bool:
        """Let go of a held entry; False if the sender claimed it meanwhile."""
        with self._lock:
            entries = self._held.get(destination, [])
            if entry not in entries:
                return False
            entries.remove(entry)
            return True

    # -- sessions --------------------------------------------------------------------------------

    def checkpoint(self, session_id: str, state: Dict[str, Any]) -> None:
        """Save where an open session stands, so a crash can be recovered from (best effort)."""
        state = dict(state, owner=self.owner)
        try:
            self._write(os.path.join(self.directory, "sessions"), f"{session_id}.json", json.dumps(state).encode("utf-8"))
        except OSError as error:
            self._disk_failed(error)

    def forget_checkpoint(self, session_id: str) -> None:
        _remove(os.path.join(self.directory, "sessions", f"{session_id}.json"))

    def orphaned_checkpoints(self) -> Iterator[Dict[str, Any]]:
        """Checkpoints of sessions whose tracker is gone, each taken by one process only.

        A checkpoint is taken by renaming it to ``<id>.json.<taker>`` and removed only when the
        caller asks for the next one, after it has spooled the session: a crash in between leaves
        it to be taken again, since a dead taker's checkpoints are orphans too.
        """
        folder = os.path.join(self.directory, "sessions")
        ages = self._heartbeat_ages()
        for name in _list(folder):
            stem, dot_json, taker = name.partition(".json")
            if not dot_json:
                continue
            path = os.path.join(folder, name)
            if taker:
                taker = taker[1:]
                if taker == self.owner or owner_is_alive(taker, ages.get(taker)):
                    continue
            try:
                with open(path, encoding="utf-8") as file:
                    state = json.load(file)
                owner = state["owner"]
                if not isinstance(owner, str):
                    raise TypeError("owner")
            except (OSError, ValueError, KeyError, TypeError, RecursionError):
                self._quarantine(path, name)
                continue
            if not taker and owner_is_alive(owner, ages.get(owner)):
                continue
            taken = os.path.join(folder, f"{stem}.json.{self.owner}")
            try:
                os.rename(path, taken)  # one process wins the recovery
            except OSError:
                continue
            yield state
            _remove(taken)

    def heartbeat(self) -> None:
        try:
            beat(os.path.join(self.directory, "owners", self.owner))
        except OSError as error:
            self._disk_failed(error)

    def _heartbeat_ages(self) -> Dict[str, float]:
        return {
            name: heartbeat_age(path, stat.st_mtime) for path, name, stat in _stat_files(os.path.join(self.directory, "owners"))
        }

    def close(self) -> None:
        with self._lock:
            journals, self._journals = list(self._journals.values()), {}
        for journal in journals:
            os.close(journal)
        _remove(os.path.join(self.directory, "owners", self.owner))


def _destination_of(claimed: str) -> str:
    """The destination of a path in its ``claimed/`` folder."""
    return os.path.basename(os.path.dirname(os.path.dirname(claimed)))


def _order(candidate: Tuple[Any, ...]) -> Tuple[Any, ...]:
    return candidate[:5]


def _queue_name(due: float, records: Sequence[Record]) -> str:
    created = min(record.created for record in records)
    return f"{_millis(due):013d}-{len(records)}-{_millis(created):013d}-{os.urandom(6).hex()}.jsonl"


def _encode(records: Sequence[Record]) -> bytes:
    return "".join(record.to_line() for record in records).encode("utf-8")


def _millis(seconds: float) -> int:
    """Whole milliseconds, clamped to what a name can hold (a clock may say anything)."""
    if not math.isfinite(seconds):
        return 0
    return min(max(int(seconds * 1000), 0), 10**15 - 1)


def _parse_name(name: str) -> Tuple[Optional[int], int, int]:
    """(due ms, record count, created ms) from ``<due ms>-<count>-<created ms>-<id>.jsonl``;
    (None, 0, 0) if malformed."""
    match = _NAME.fullmatch(name)
    if match is None or int(match.group(2)) < 1:
        return None, 0, 0
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _list(folder: str) -> List[str]:
    try:
        return os.listdir(folder)
    except OSError:  # missing, or no longer a folder: nothing to list
        return []


def _open_journal(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)  # deleted under us
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _list_destinations(directory: str) -> List[str]:
    return [name for name in _list(directory) if name not in _RESERVED and os.path.isdir(os.path.join(directory, name, "queue"))]


def _modified(folder: str) -> Optional[int]:
    """The folder's modification time, which any file added or removed in it changes; None if missing."""
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _stat_files(folder: str, skip: Callable[[str], bool] = lambda name: False) -> List[Tuple[str, str, os.stat_result]]:
    """(path, name, stat) of each file in ``folder`` but those ``skip`` names, skipping those
    another process moves meanwhile."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if not skip(entry.name) and entry.is_file():
                        found.append((entry.path, entry.name, entry.stat()))
                except OSError:
                    continue  # claimed, settled or closed between the listing and the stat
    except OSError:
        pass
    return found


def _remove(path: str) -> bool:
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def _fsync_folder(folder: str) -> None:
    """Make a rename durable: POSIX keeps directory entries in the directory's own data."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_spool(folders: Iterable[str], owner: str, drop: Callable[[str, str, int], None], *args: Any, **options: Any) -> Spool:
    """The spool in the first of ``folders`` that can be written; if none can, one in the first
    folder that holds payloads in memory and keeps trying the disk (see ``Spool.problem``).

    A read-only home or a full disk is the player's machine, not a programming error: the game
    must start, and its payloads still go out.
    """
    first: Optional[Spool] = None
    for folder in folders:
        spool = Spool(folder, owner, drop, *args, **options)
        if spool.problem is None:
            if first is not None:
                log.warning("playhooks spool: using %s instead of %s (%s)", folder, first.directory, first.problem)
            return spool
        first = first or spool
    assert first is not None, "no folder to try"
    return first
