"""A spool folder seen from outside any tracker: what waits in it, and mending it (``playhooks spool``).

Everything here works on a folder a game may be using at the same moment, through the same means
the spool gives two trackers sharing a folder (see ``_spool``), and nothing else:

- Counting reads file names (they say how many records a file holds, when they are due and when the
  oldest was accepted); only dead letters are opened, for their reasons. Nothing is quarantined,
  made or moved by looking.
- A dead letter goes back to its queue in three steps, each an atomic rename, so a kill at any point
  leaves each record in exactly one file, never none and never two:

  1. it is taken by renaming it to ``dead/<name>.<taker>``: one process wins, so two ``retry-dead``
     at once never requeue it twice (a taker that is gone leaves it for the next one);
  2. it is rewritten in place (a temporary file renamed over it) with its attempts cleared and its
     age counted from now, so the retry policy gives it a full budget again;
  3. it is renamed into ``<service>/queue/`` under a queue file's name, due now. A running tracker
     sees its queue folder change and sends it, as it would a file another tracker wrote.

- Purging removes the files it listed, and only those: a file a running tracker claimed meanwhile
  is being sent, and is left to it. Files that live trackers are sending are never touched.
"""

import os
import re
import time
from typing import Dict, Iterable, List, Optional, Tuple

import attrs

from ._owners import HEARTBEAT_SECONDS, NAMESPACE, beat, heartbeat_age, new_owner, owner_is_alive, retire_owner
from ._settings import _user_data_folder, private_temporary_folder, program_folder_name
from ._spool import (
    _RESERVED,
    _SEPARATOR,
    Record,
    _encode,
    _fsync_folder,
    _list,
    _list_destinations,
    _parse_name,
    _queue_name,
    _remove,
    _stat_files,
)

__all__ = [
    "DeadReason",
    "NotASpool",
    "PurgePlan",
    "Requeued",
    "ServiceStatus",
    "SpoolStatus",
    "SpoolSummary",
    "check_spool",
    "find_spools",
    "live_users",
    "plan_purge",
    "program_folder",
    "purge",
    "retry_dead",
    "services",
    "spool_roots",
    "status",
    "user_pid",
]

# Two folders every spool makes at its start and never removes: enough to tell one from any folder.
_SPOOL_MARKS = ("dead", "owners")
_DEFAULT_SERVICES = ("playcamp", "playfab")
_DEAD_SUFFIX = ".jsonl"
_PROGRAM_FOLDER = re.compile(r"(.+)-([0-9a-f]{10})")  # <program name>-<hash of its path>, as Settings names it
_DEAD_NAME = re.compile(r"[0-9]{1,15}-([0-9]{1,9})-")
_SAMPLE_REASONS = 5  # distinct reasons shown per service; the rest are counted together


class NotASpool(ValueError):
    """The folder given is missing, not a folder, or holds no spool (the message says which)."""


@attrs.frozen
class DeadReason:
    """Dead letters of one service refused or given up on for the same reason."""

    reason: str
    records: int
    sample_id: str  # one of their record ids, to look for in the files or in a service's logs


@attrs.frozen
class ServiceStatus:
    """What waits for one service. Times are wall seconds; None where nothing waits."""

    name: str
    pending: int  # queued or being sent
    being_sent: int  # of those, claimed by a tracker right now
    oldest_created: Optional[float]
    next_due: Optional[float]
    dead: int
    dead_reasons: Tuple[DeadReason, ...]  # most records first


@attrs.frozen
class SpoolStatus:
    directory: str
    size: int  # bytes of every file in the folder
    users: Tuple[str, ...]  # owner ids of the live trackers using it
    services: Tuple[ServiceStatus, ...]
    quarantined: Tuple[str, ...]  # file names in quarantine/
    quarantined_bytes: int
    open_sessions: int  # checkpoints: sessions open in a running game, or left by a crashed one


@attrs.frozen
class SpoolSummary:
    """One spool found in a data folder, for a listing."""

    directory: str
    program: str
    size: int
    pending: int
    dead: int


@attrs.frozen
class Requeued:
    """What ``retry_dead`` did."""

    records: Dict[str, int]  # per service that had dead letters
    unreadable: Tuple[str, ...]  # dead letters that could not be read: moved to quarantine/, as the spool does


@attrs.frozen
class PurgePlan:
    """The files ``purge`` will remove, and what they hold, listed before anything is removed."""

    directory: str
    pending: Dict[str, int]  # records per service
    dead: Dict[str, int]
    quarantined: int  # files
    checkpoints: int  # sessions a crashed game left open, which the next start would send
    left_being_sent: int  # records live trackers are sending: not touched
    # (path, what, records), what being "pending:<service>", "dead:<service>", "journal", "quarantine" or "checkpoint"
    paths: Tuple[Tuple[str, str, int], ...]


# -- finding a spool -------------------------------------------------------------------------------


def check_spool(directory: str) -> str:
    """The folder's absolute path, if it holds a spool.

    Raises:
        NotASpool: it does not exist, is not a folder, or is not a spool.
        PermissionError: it cannot be read.
    """
    path = os.path.abspath(directory)
    if not os.path.exists(path):
        raise NotASpool(f"{path} does not exist")
    if not os.path.isdir(path):
        raise NotASpool(f"{path} is not a folder")
    os.listdir(path)  # raises PermissionError for a folder that cannot be read
    if not all(os.path.isdir(os.path.join(path, mark)) for mark in _SPOOL_MARKS):
        raise NotASpool(f"{path} is not a playhooks spool (a spool holds the folders {' and '.join(_SPOOL_MARKS)})")
    return path


def spool_roots() -> List[str]:
    """Where trackers make their spools by default: ``playhooks`` in the user's data folder, then
    the private temporary folder a tracker falls back to when that one cannot be written."""
    roots = [os.path.join(_user_data_folder(), "playhooks")]
    fallback = private_temporary_folder(make=False)  # looked at, never made
    if fallback is not None:
        roots.append(fallback)
    return roots


def program_folder(program: str, roots: Optional[Iterable[str]] = None) -> str:
    """The spool a tracker would use by default for ``program``: a script's path (exactly the folder
    its tracker makes), or a program's name (the one spool of a program of that name).

    Raises:
        NotASpool: no such spool, or several programs of that name (the message lists them).
    """
    roots = list(spool_roots() if roots is None else roots)
    if os.sep in program or (os.altsep or os.sep) in program or os.path.isfile(program):
        name = program_folder_name(program)
        candidates = [os.path.join(root, name) for root in roots]
    else:
        candidates = [summary.directory for summary in _spools_in(roots) if summary.program == program]
    found = [folder for folder in candidates if _is_spool(folder)]
    if len(found) == 1:
        return found[0]
    if not found:
        where = " or ".join(roots)
        raise NotASpool(f"no spool of a program {program!r} in {where} (`playhooks spool status` lists those found)")
    listed = ", ".join(found)
    raise NotASpool(f"several programs named {program!r} have spools ({listed}): give the game's script path or the folder")


def find_spools(roots: Optional[Iterable[str]] = None, now: Optional[float] = None) -> List[SpoolSummary]:
    """The spools in the default folders (or ``roots``), by program name then folder."""
    found = _spools_in(list(spool_roots() if roots is None else roots), now)
    return sorted(found, key=lambda each: (each.program, each.directory))


def _spools_in(roots: List[str], now: Optional[float] = None) -> List[SpoolSummary]:
    found = []
    for root in roots:
        for name in sorted(_list(root)):
            folder = os.path.join(root, name)
            if not _is_spool(folder):
                continue
            match = _PROGRAM_FOLDER.fullmatch(name)
            state = status(folder, now)
            found.append(
                SpoolSummary(
                    directory=folder,
                    program=match.group(1) if match else name,  # the relay's, or one named by spool_dir
                    size=state.size,
                    pending=sum(service.pending for service in state.services),
                    dead=sum(service.dead for service in state.services),
                )
            )
    return found


def _is_spool(folder: str) -> bool:
    try:
        check_spool(folder)
    except (NotASpool, OSError):
        return False
    return True


# -- looking -----------------------------------------------------------------------------------------


def services(directory: str) -> List[str]:
    """The services (destinations) this spool holds records for, with PlayCamp's and PlayFab's."""
    found = set(_list_destinations(directory)) | {destination for _, destination, _ in _dead_letters(directory)}
    return sorted(found | set(_DEFAULT_SERVICES))


def status(directory: str, now: Optional[float] = None) -> SpoolStatus:
    """What waits in the spool, per service, and what it holds besides."""
    now = time.time() if now is None else now
    dead: Dict[str, List[Record]] = {}
    unreadable: Dict[str, List[Tuple[str, int]]] = {}
    for path, destination, _ in _dead_letters(directory):
        records = _read_records(path)
        if records is None:
            unreadable.setdefault(destination, []).append((os.path.basename(path), _count_in_name(path)))
        dead.setdefault(destination, []).extend(records or [])
    reported = []
    for name in sorted(set(_list_destinations(directory)) | set(dead)):
        queued = _queue_files(directory, name, "queue")
        claimed = _queue_files(directory, name, "claimed")
        waiting = queued + claimed
        reported.append(
            ServiceStatus(
                name=name,
                pending=sum(count for _, _, count, _ in waiting),
                being_sent=sum(count for _, _, count, _ in claimed),
                oldest_created=min((created for _, _, _, created in waiting), default=None),
                next_due=min((due for _, due, _, _ in queued), default=None),
                dead=len(dead.get(name, [])) + sum(count for _, count in unreadable.get(name, [])),
                dead_reasons=_reasons(dead.get(name, []), unreadable.get(name, [])),
            )
        )
    quarantine = _stat_files(os.path.join(directory, "quarantine"))
    return SpoolStatus(
        directory=directory,
        size=_size_of(directory),
        users=tuple(live_users(directory)),
        services=tuple(reported),
        quarantined=tuple(sorted(name for _, name, _ in quarantine)),
        quarantined_bytes=sum(stat.st_size for _, _, stat in quarantine),
        open_sessions=len([name for name in _list(os.path.join(directory, "sessions")) if ".json" in name]),
    )


def live_users(directory: str) -> List[str]:
    """The owner ids of the trackers alive and using this spool (pid first: ``<pid>.<ns>.<id>``)."""
    ages = _heartbeat_ages(directory)
    return sorted(owner for owner, age in ages.items() if owner_is_alive(owner, age))


def user_pid(owner: str) -> Optional[int]:
    """The pid of a tracker's owner id, if it is a pid on this machine (in this pid namespace);
    None for one in another container or on another machine."""
    pid, _, rest = owner.partition(".")
    return int(pid) if pid.isdigit() and rest.partition(".")[0] == NAMESPACE else None


def _reasons(records: List[Record], unreadable: List[Tuple[str, int]]) -> Tuple[DeadReason, ...]:
    by_reason: Dict[str, List[str]] = {}
    for record in records:
        by_reason.setdefault(record.error or "no reason recorded", []).append(record.id)
    ranked = sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0]))
    shown = [DeadReason(reason, len(ids), ids[0]) for reason, ids in ranked[:_SAMPLE_REASONS]]
    rest = ranked[_SAMPLE_REASONS:]
    if rest:
        shown.append(DeadReason(f"{len(rest)} other reasons", sum(len(ids) for _, ids in rest), rest[0][1][0]))
    if unreadable:
        # Not records any more, only a file: its name is the sample, and retry-dead quarantines it.
        reason = f"{len(unreadable)} unreadable file(s), which retry-dead moves to quarantine/"
        shown.append(DeadReason(reason, sum(count for _, count in unreadable), unreadable[0][0]))
    return tuple(shown)


# -- mending ------------------------------------------------------------------------------------------


def retry_dead(directory: str, service: Optional[str] = None, now: Optional[float] = None) -> Requeued:
    """Put the dead letters (of ``service``, or all) back in their queues, due now.

    Raises:
        OSError: the disk refused a write; what was requeued before stays requeued, the rest dead.
    """
    now = time.time() if now is None else now
    requeued: Dict[str, int] = {}
    unreadable: List[str] = []
    # This process takes dead letters as an owner, with a heartbeat as a tracker's: without one, a
    # live pid counts as dead (it may have been reused), and another retry-dead would take them over.
    owner = new_owner()
    heartbeat = os.path.join(directory, "owners", owner)
    beat(heartbeat)
    last_beat = time.monotonic()
    try:
        ages = _heartbeat_ages(directory)
        for path, destination, taker in _dead_letters(directory):
            if service not in (None, destination):
                continue
            if taker and owner_is_alive(taker, ages.get(taker)):
                continue  # another retry-dead is requeuing it now
            if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                beat(heartbeat)
                last_beat = time.monotonic()
            count = _requeue(directory, path, destination, owner, now)
            if count is None:
                unreadable.append(os.path.basename(path))
            elif count:
                requeued[destination] = requeued.get(destination, 0) + count
    finally:
        retire_owner(owner)
        _remove(heartbeat)
    return Requeued(requeued, tuple(unreadable))


def _requeue(directory: str, path: str, destination: str, owner: str, now: float) -> Optional[int]:
    """Move one dead letter back to its queue (see the module's docstring): the records it held;
    0 if another process took it first; None if it cannot be read (then it is quarantined)."""
    dead_folder = os.path.dirname(path)
    name = os.path.basename(path)
    taken = os.path.join(dead_folder, f"{name[: name.index(_DEAD_SUFFIX) + len(_DEAD_SUFFIX)]}.{owner}")
    try:
        os.rename(path, taken)
    except FileNotFoundError:
        return 0  # requeued by another, or dropped for room by a running tracker
    records = _read_records(taken)
    if not records:
        _move(taken, os.path.join(directory, "quarantine", f"{int(now)}{_SEPARATOR}{name}"))
        return None
    for record in records:
        record.attempts, record.error, record.created = 0, None, now
    data = _encode(records)
    temporary = os.path.join(directory, "tmp", f"{owner}{_SEPARATOR}{name}")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, taken)
    except OSError:
        _remove(temporary)
        raise
    queue = os.path.join(directory, destination, "queue")
    os.makedirs(queue, exist_ok=True)
    os.replace(taken, os.path.join(queue, _queue_name(now, records)))
    _fsync_folder(queue)
    _fsync_folder(dead_folder)
    return len(records)


def plan_purge(directory: str, service: Optional[str] = None, dead_only: bool = False) -> PurgePlan:
    """What ``purge`` would remove: dead letters, and unless ``dead_only`` the records waiting to be
    sent too (of ``service``, or all; with all, quarantined files and crashed sessions' checkpoints)."""
    ages = _heartbeat_ages(directory)
    paths: List[Tuple[str, str, int]] = []
    pending: Dict[str, int] = {}
    dead: Dict[str, int] = {}
    left = 0
    for path, destination, taker in _dead_letters(directory):
        if service in (None, destination) and not (taker and owner_is_alive(taker, ages.get(taker))):
            records = _read_records(path)
            count = _count_in_name(path) if records is None else len(records)
            dead[destination] = dead.get(destination, 0) + count
            paths.append((path, f"dead:{destination}", count))
    if not dead_only:
        for destination in _list_destinations(directory):
            if service not in (None, destination):
                continue
            for path, _, count, _ in _queue_files(directory, destination, "queue"):
                pending[destination] = pending.get(destination, 0) + count
                paths.append((path, f"pending:{destination}", count))
            for path, _, count, _ in _queue_files(directory, destination, "claimed"):
                claimer = os.path.basename(path).partition(_SEPARATOR)[0]
                if owner_is_alive(claimer, ages.get(claimer)):
                    left += count
                    continue
                # A stopped tracker's claim: the next start would put it back in the queue.
                pending[destination] = pending.get(destination, 0) + count
                paths.append((path, f"pending:{destination}", count))
                paths.append((os.path.join(directory, destination, "sent", os.path.basename(path)), "journal", 0))
    quarantined = checkpoints = 0
    if not dead_only and service is None:
        for path, _, _ in _stat_files(os.path.join(directory, "quarantine")):
            quarantined += 1
            paths.append((path, "quarantine", 0))
        for path, _, _ in _orphaned_checkpoints(directory, ages):
            checkpoints += 1
            paths.append((path, "checkpoint", 0))
    return PurgePlan(directory, pending, dead, quarantined, checkpoints, left, tuple(paths))


def purge(plan: PurgePlan) -> PurgePlan:
    """Remove the files ``plan`` lists; what was removed, in the plan's terms.

    A file gone meanwhile (a running tracker claimed it to send it, or dropped it) is not counted.

    Raises:
        OSError: a file could not be removed; those before it are gone.
    """
    removed = []
    for path, what, count in plan.paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append((path, what, count))
    pending: Dict[str, int] = {}
    dead: Dict[str, int] = {}
    for _, what, count in removed:
        kind, _, destination = what.partition(":")
        if kind in ("pending", "dead"):
            tally = pending if kind == "pending" else dead
            tally[destination] = tally.get(destination, 0) + count
    return PurgePlan(
        plan.directory,
        pending,
        dead,
        sum(1 for _, what, _ in removed if what == "quarantine"),
        sum(1 for _, what, _ in removed if what == "checkpoint"),
        plan.left_being_sent,
        tuple(removed),
    )


# -- reading the folder ----------------------------------------------------------------------------


def _queue_files(directory: str, destination: str, part: str) -> List[Tuple[str, float, int, float]]:
    """(path, due, records, oldest created) of each well-named file in ``queue/`` or ``claimed/``."""
    files = []
    for name in _list(os.path.join(directory, destination, part)):
        due_ms, count, created_ms = _parse_name(name.rpartition(_SEPARATOR)[2])
        if due_ms is not None:
            files.append((os.path.join(directory, destination, part, name), due_ms / 1000, count, created_ms / 1000))
    return files


def _dead_letters(directory: str) -> List[Tuple[str, str, str]]:
    """(path, destination, taker or "") of each dead letter: ``<destination>~<name>.jsonl``, with
    ``.<taker>`` after it while a ``retry-dead`` has it."""
    letters = []
    for name in sorted(_list(os.path.join(directory, "dead"))):
        destination, separator, rest = name.partition(_SEPARATOR)
        stem, suffix, taker = rest.partition(_DEAD_SUFFIX)
        if not (separator and stem and suffix) or (taker and not taker.startswith(".")):
            continue
        if destination in _RESERVED or destination in (".", "..") or os.path.basename(destination) != destination:
            continue  # not a name a spool writes: never a path to requeue into
        letters.append((os.path.join(directory, "dead", name), destination, taker[1:]))
    return letters


def _orphaned_checkpoints(directory: str, ages: Dict[str, float]) -> List[Tuple[str, str, str]]:
    """Checkpoints no live tracker holds: the sessions the next start would send as recovered."""
    import json

    orphans = []
    for path, name, _ in _stat_files(os.path.join(directory, "sessions")):
        taker = name.partition(".json")[2][1:]
        try:
            with open(path, encoding="utf-8") as file:
                owner = json.load(file).get("owner", "")
        except (OSError, ValueError, AttributeError, RecursionError):
            owner = ""
        holders = [holder for holder in (owner, taker) if isinstance(holder, str) and holder]
        if not any(owner_is_alive(holder, ages.get(holder)) for holder in holders):
            orphans.append((path, name, owner if isinstance(owner, str) else ""))
    return orphans


def _read_records(path: str) -> Optional[List[Record]]:
    """The records of a spool file; None if it cannot be read or is not one."""
    try:
        with open(path, encoding="utf-8") as file:
            records = [Record.from_line(line) for line in file if line.strip()]
    except (OSError, ValueError, TypeError, RecursionError):
        return None
    return records or None


def _count_in_name(path: str) -> int:
    """The records a dead letter's name says it holds (``<destination>~<ms>-<count>-<id>.jsonl``)."""
    match = _DEAD_NAME.match(os.path.basename(path).partition(_SEPARATOR)[2])
    return int(match.group(1)) if match else 0


def _heartbeat_ages(directory: str) -> Dict[str, float]:
    return {name: heartbeat_age(path, stat.st_mtime) for path, name, stat in _stat_files(os.path.join(directory, "owners"))}


def _size_of(directory: str) -> int:
    total = 0
    for folder, _, names in os.walk(directory):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # sent and removed while we walked
    return total


def _move(source: str, target: str) -> None:
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)
    except OSError:
        pass  # it stays where it is, taken: the next retry-dead looks at it again
