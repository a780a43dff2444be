"""The durable spool: payloads on disk from the moment they are accepted until a service has them.

Plain files, so it works without ``sqlite3`` (Ren'Py has none) and survives crashes and power cuts::

    SPOOL/
      <destination>/queue/<due ms>-<count>-<created ms>-<id>.jsonl   records waiting to be sent
      <destination>/claimed/<owner>~<file name>            records a sender is sending now
      dead/<destination>~<file name>                        records a service refused, or given up on
      quarantine/<file name>                                files that could not be read
      sessions/<session id>.json                            checkpoints of open sessions
      owners/<owner>                                        each live tracker's heartbeat
      tmp/                                                  files being written

- Every write is atomic: a temporary file, fsync, rename (and an fsync of the folder on POSIX), so
  a file is either whole or absent.
- A file holds the records of one worker round, so a round costs one fsync whatever it holds. The
  name starts with the wall-clock millisecond the records are due, so a sorted listing is the
  order to send in; it says how many records the file holds, so counting reads no file, and when
  the oldest of them was accepted, which is what the bounds drop first.
- A sender claims a file by renaming it into ``claimed/`` under its owner id: a rename succeeds
  for one process only, so two processes sharing a spool never send the same record at once.
  Files claimed by an owner that is gone (its process died) are put back in the queue.
- Limits on records and bytes: past them dead letters go first, then the oldest files, events
  before sessions (sessions are the playtime itself), each record counted as ``spool_full``.
"""

import json
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import attrs

from ._stats import SPOOL_FULL

log = logging.getLogger("playhooks")

DEFAULT_MAX_RECORDS = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
STALE_OWNER_SECONDS = 120.0  # an owner whose heartbeat is older than this is taken for dead
HEARTBEAT_SECONDS = 15.0
_CLOCK_SET_BACK = 2 * 3600.0  # no retry waits this long, so a record due later than this is due now
_SEPARATOR = "~"

# Owners (pid.token) of trackers alive in this process: a pid check cannot tell them from a
# closed tracker, or from the parent of a fork.
_live_owners = set()
_live_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at the fork; the child's copy would stay locked.
    global _live_lock
    _live_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_line(cls, line: str) -> "Record":
        fields = json.loads(line)
        if not (isinstance(fields, dict) and isinstance(fields.get("data"), dict) and isinstance(fields.get("id"), str)):
            raise ValueError("not a spool record")
        return cls(
            id=fields["id"],
            kind=str(fields.get("kind", "")),
            data=fields["data"],
            attempts=int(fields.get("attempts", 0)),
            created=float(fields.get("created", 0.0)),
            error=fields.get("error"),
        )


@attrs.frozen
class Claim:
    """Records taken from the queue by this process, to send and then settle."""

    destination: str
    path: str
    records: Tuple[Record, ...]


def new_owner() -> str:
    """An id for a tracker that is unique across processes and time: ``<pid>.<random>``."""
    owner = f"{os.getpid()}.{uuid.uuid4().hex[:12]}"
    with _live_lock:
        _live_owners.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    with _live_lock:
        _live_owners.discard(owner)


def owner_is_alive(owner: str, heartbeat_age: Optional[float]) -> bool:
    """Whether the tracker ``owner`` may still be working on what it claimed."""
    pid_text, _, _ = owner.partition(".")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        with _live_lock:
            return owner in _live_owners
    if os.name == "posix":
        try:
            os.kill(pid, 0)  # signal 0 only asks whether the process exists
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, under another user
    # The pid exists (or cannot be checked here): a stale heartbeat means it was reused.
    return heartbeat_age is not None and heartbeat_age < STALE_OWNER_SECONDS


class Spool:
    """A spool directory, as one tracker (``owner``) uses it.

    Args:
        directory: the folder; made if missing.
        owner: this tracker's id, from ``new_owner``.
        drop: called with (reason, detail, how many records) for each record dropped.
        max_records, max_bytes: the bounds past which the oldest records are dropped.
    """

    def __init__(
        self,
        directory: str,
        owner: str,
        drop: Callable[[str, str, int], None],
        max_records: int = DEFAULT_MAX_RECORDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.directory = os.path.abspath(directory)
        self.owner = owner
        self._drop = drop
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.quarantined = 0
        self.estimated_records = 0  # as of the last check of the bounds, plus what was put since
        for folder in ("dead", "quarantine", "sessions", "owners", "tmp"):
            os.makedirs(os.path.join(self.directory, folder), exist_ok=True)
        self.heartbeat()

    # -- writing ---------------------------------------------------------------------------------

    def put(self, destination: str, records: Sequence[Record], due: float) -> None:
        """Add records, due to be sent at wall-clock time ``due``, in one atomic file."""
        if not records:
            return
        created = min(record.created for record in records)
        name = f"{int(due * 1000):013d}-{len(records)}-{int(created * 1000):013d}-{uuid.uuid4().hex[:12]}.jsonl"
        self.estimated_records += len(records)
        self._write(self._folder(destination, "queue"), name, "".join(record.to_line() for record in records))

    def _write(self, folder: str, name: str, text: str) -> None:
        temporary = os.path.join(self.directory, "tmp", f"{self.owner}{_SEPARATOR}{name}")
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, os.path.join(folder, name))
        _fsync_folder(folder)

    def _folder(self, destination: str, part: str) -> str:
        folder = os.path.join(self.directory, destination, part)
        os.makedirs(folder, exist_ok=True)
        return folder

    # -- sending ---------------------------------------------------------------------------------

    def claim_due(self, destination: str, now: float, max_records: int) -> List[Claim]:
        """Take files whose records are due, oldest first, up to about ``max_records`` records."""
        queue = self._folder(destination, "queue")
        claimed_folder = self._folder(destination, "claimed")
        claims: List[Claim] = []
        taken = 0
        for name in sorted(os.listdir(queue)):
            due, count, _ = _parse_name(name)
            if due is None:
                self._quarantine(os.path.join(queue, name), name)
                continue
            if now < due < now + _CLOCK_SET_BACK:
                continue  # not yet. (Much later than any wait means the wall clock was set back.)
            if claims and taken + count > max_records:
                break
            claimed = os.path.join(claimed_folder, f"{self.owner}{_SEPARATOR}{name}")
            try:
                os.rename(os.path.join(queue, name), claimed)
            except FileNotFoundError:
                continue  # another process claimed it first
            records = self._read(claimed, name)
            if records is not None:
                claims.append(Claim(destination, claimed, tuple(records)))
                taken += len(records)
        return claims

    def _read(self, path: str, name: str) -> Optional[List[Record]]:
        try:
            with open(path, encoding="utf-8") as file:
                records = [Record.from_line(line) for line in file if line.strip()]
            if not records:
                raise ValueError("empty")
            return records
        except (OSError, ValueError, TypeError, UnicodeDecodeError) as error:
            log.warning("spool file %s is unreadable (%s): quarantined", name, type(error).__name__)
            self._quarantine(path, name)
            return None

    def _quarantine(self, path: str, name: str) -> None:
        try:
            os.replace(path, os.path.join(self.directory, "quarantine", f"{int(time.time())}{_SEPARATOR}{name}"))
        except OSError:
            return
        self.quarantined += 1

    def settle(self, claim: Claim, retry: Sequence[Tuple[Record, float]], dead: Sequence[Record]) -> None:
        """Finish a claim: records to retry go back to the queue with their due times, the dead to
        ``dead/``; the rest were delivered. Written before the claim is removed, so a crash
        in between resends rather than loses."""
        if not os.path.exists(claim.path):
            return  # taken back (this tracker was closed mid-send): whoever took it sends it
        by_due: Dict[int, List[Record]] = {}
        for record, due in retry:
            by_due.setdefault(int(due * 1000), []).append(record)
        for due_ms, records in by_due.items():
            self.put(claim.destination, records, due_ms / 1000)
        if dead:
            name = f"{claim.destination}{_SEPARATOR}{int(time.time() * 1000):013d}-{len(dead)}-{uuid.uuid4().hex[:12]}.jsonl"
            self._write(os.path.join(self.directory, "dead"), name, "".join(record.to_line() for record in dead))
        try:
            os.remove(claim.path)
        except FileNotFoundError:
            pass

    def release(self, claim: Claim) -> None:
        """Put a claim back in the queue untouched (the tracker is stopping mid-send)."""
        name = os.path.basename(claim.path).split(_SEPARATOR, 1)[1]
        try:
            os.replace(claim.path, os.path.join(self._folder(claim.destination, "queue"), name))
        except OSError:
            pass

    # -- looking after the spool -----------------------------------------------------------------

    def destinations(self) -> List[str]:
        reserved = {"dead", "quarantine", "sessions", "owners", "tmp"}
        return sorted(
            name
            for name in os.listdir(self.directory)
            if name not in reserved and os.path.isdir(os.path.join(self.directory, name, "queue"))
        )

    def pending(self, destination: Optional[str] = None) -> int:
        """Records waiting or being sent (counted from file names, no file read)."""
        total = 0
        for name in [destination] if destination else self.destinations():
            for part in ("queue", "claimed"):
                for file_name in _list(os.path.join(self.directory, name, part)):
                    total += _parse_name(file_name.split(_SEPARATOR)[-1])[1]
        return total

    def next_due(self, destination: str) -> Optional[float]:
        """When the earliest waiting record of ``destination`` is due, or None if none waits."""
        names = sorted(_list(os.path.join(self.directory, destination, "queue")))
        return _parse_name(names[0])[0] if names else None

    def reclaim(self) -> int:
        """Return to the queue what dead owners had claimed, and clear their temporary files."""
        ages = self._heartbeat_ages()
        returned = 0
        for destination in self.destinations():
            claimed = os.path.join(self.directory, destination, "claimed")
            for name in _list(claimed):
                owner, _, original = name.partition(_SEPARATOR)
                if original and not owner_is_alive(owner, ages.get(owner)):
                    try:
                        os.replace(os.path.join(claimed, name), os.path.join(self.directory, destination, "queue", original))
                        returned += 1
                    except OSError:
                        pass  # another process reclaimed it
        tmp = os.path.join(self.directory, "tmp")
        for name in _list(tmp):
            owner = name.partition(_SEPARATOR)[0]
            if not owner_is_alive(owner, ages.get(owner)):
                _remove(os.path.join(tmp, name))
        for owner in ages:
            if not owner_is_alive(owner, ages[owner]):
                _remove(os.path.join(self.directory, "owners", owner))
        return returned

    def enforce_limits(self, expendable: Sequence[str]) -> None:
        """Drop the oldest waiting files while over a bound: first from the ``expendable`` destinations.

        Files being sent count towards the bounds but are not dropped.
        """
        files: List[Tuple[int, int, str, int, int]] = []  # (rank, created ms, path, records, bytes)
        records = size = 0
        for destination in self.destinations():
            rank = 0 if destination in expendable else 1
            for part in ("queue", "claimed"):
                for path, name, stat in _stat_files(os.path.join(self.directory, destination, part)):
                    _, count, created = _parse_name(name.split(_SEPARATOR)[-1])
                    records += count
                    size += stat.st_size
                    if part == "queue":
                        files.append((rank, created, path, count, stat.st_size))
        # Dead letters count against the bytes too, and go first: a wrong key would fill them forever.
        dead = []
        for path, _, stat in _stat_files(os.path.join(self.directory, "dead")):
            size += stat.st_size
            dead.append((-1, 0, path, 0, stat.st_size))
        self.estimated_records = records
        for _, _, path, count, bytes_ in sorted(dead) + sorted(files):
            if records <= self.max_records and size <= self.max_bytes:
                break
            if _remove(path):
                records -= count
                size -= bytes_
                self.estimated_records -= count
                if count:
                    self._drop(SPOOL_FULL, f"the spool is over its bounds: dropped {os.path.basename(path)}", count)

    # -- sessions --------------------------------------------------------------------------------

    def checkpoint(self, session_id: str, state: Dict[str, Any]) -> None:
        """Save where an open session stands, so a crash can be recovered from."""
        state = dict(state, owner=self.owner)
        self._write(os.path.join(self.directory, "sessions"), f"{session_id}.json", json.dumps(state))

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
            except (OSError, ValueError, KeyError, TypeError):
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
        path = os.path.join(self.directory, "owners", self.owner)
        with open(path, "a", encoding="utf-8"):
            pass
        os.utime(path)

    def _heartbeat_ages(self) -> Dict[str, float]:
        now = time.time()
        return {name: now - stat.st_mtime for _, name, stat in _stat_files(os.path.join(self.directory, "owners"))}

    def close(self) -> None:
        _remove(os.path.join(self.directory, "owners", self.owner))


def _parse_name(name: str) -> Tuple[Optional[float], int, int]:
    """(due seconds, record count, created ms) from ``<due ms>-<count>-<created ms>-<id>.jsonl``;
    (None, 0, 0) if malformed."""
    parts = name.split("-")
    if len(parts) != 4 or not name.endswith(".jsonl"):
        return None, 0, 0
    try:
        return int(parts[0]) / 1000, int(parts[1]), int(parts[2])
    except ValueError:
        return None, 0, 0


def _list(folder: str) -> List[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _stat_files(folder: str) -> List[Tuple[str, str, os.stat_result]]:
    """(path, name, stat) of each file in ``folder``, skipping those another process moves meanwhile."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_file():
                        found.append((entry.path, entry.name, entry.stat()))
                except FileNotFoundError:
                    continue  # claimed, settled or closed between the listing and the stat
    except FileNotFoundError:
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
