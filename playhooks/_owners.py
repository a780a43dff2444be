"""Who owns what in a shared spool: an id per tracker, its heartbeat, and whether it is alive.

A tracker's claims and checkpoints are taken over only when its owner is dead. A pid alone cannot
say so: two containers sharing a spool volume both run as pid 1, and pids are reused. So:

- An owner id is ``<pid>.<namespace>.<random>``: unique per tracker start, and it says which pid
  namespace (and, on Linux, which boot) the pid belongs to.
- A pid is checked only when the owner is in this process's namespace: gone means dead.
- Anything else (another namespace or machine, a live pid that may have been reused) is alive
  while its heartbeat is fresh. A heartbeat holds the boot id and the monotonic clock when the
  boot is known, so setting the wall clock cannot make a live owner look stale; otherwise its
  file's modification time counts, and one from the "future" (the clock set back) is stale too.
"""

import os
import threading
import time
import zlib
from typing import Optional

STALE_OWNER_SECONDS = 120.0  # an owner whose heartbeat is older than this is taken for dead
HEARTBEAT_SECONDS = 15.0


def _read_first_line(path: str) -> str:
    try:
        with open(path, encoding="ascii") as file:
            return file.readline().strip()
    except (OSError, ValueError):
        return ""


def _namespace() -> str:
    """This process's pid namespace and boot, as a short token; the host's name where there is no /proc."""
    try:
        pid_namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pid_namespace = os.environ.get("COMPUTERNAME", "") if os.name == "nt" else os.uname().nodename
    return format(zlib.crc32(f"{pid_namespace}/{BOOT_ID}".encode("utf-8", "replace")), "08x")


BOOT_ID = _read_first_line("/proc/sys/kernel/random/boot_id")  # "" where the system does not say
NAMESPACE = _namespace()

# Owners of trackers alive in this process: a pid check cannot tell them from a closed tracker,
# or from the parent of a fork.
_live_owners = set()
_live_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at the fork; the child's copy would stay locked.
    global _live_lock
    _live_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def new_owner() -> str:
    """An id for a tracker, unique across processes, namespaces and time."""
    owner = f"{os.getpid()}.{NAMESPACE}.{os.urandom(6).hex()}"
    with _live_lock:
        _live_owners.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    with _live_lock:
        _live_owners.discard(owner)


def owner_is_alive(owner: str, heartbeat_age: Optional[float]) -> bool:
    """Whether the tracker ``owner`` may still be working on what it claimed."""
    pid_text, _, rest = owner.partition(".")
    namespace = rest.partition(".")[0] if rest.count(".") == 1 else None
    if namespace == NAMESPACE and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            with _live_lock:
                return owner in _live_owners
        if os.name == "posix":
            try:
                os.kill(pid, 0)  # signal 0 only asks whether the process exists
            except ProcessLookupError:
                return False
            except (PermissionError, OverflowError):
                pass  # it exists under another user; or a pid no process can have
            if _is_zombie(pid):
                return False  # killed, and not yet reaped by a parent that died with it
    # Another namespace, or a pid that may have been reused: only a fresh heartbeat says alive.
    return heartbeat_age is not None and heartbeat_age < STALE_OWNER_SECONDS


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has ended but is still listed (Linux says so in /proc; elsewhere: no)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rpartition(b")")[2].split()[:1] == [b"Z"]
    except OSError:
        return False


def beat(path: str) -> None:
    """Write a heartbeat: the boot id and the monotonic clock, read back by ``heartbeat_age``."""
    with open(path, "w", encoding="ascii") as file:
        file.write(f"{BOOT_ID} {time.monotonic():.3f}\n")


def heartbeat_age(path: str, modified: float) -> float:
    """Seconds since the heartbeat at ``path`` (last modified at wall time ``modified``) was written."""
    boot, _, monotonic = _read_first_line(path).partition(" ")
    if BOOT_ID and boot == BOOT_ID:
        try:
            return max(0.0, time.monotonic() - float(monotonic))
        except ValueError:
            pass  # being written right now: its time of modification says as much
    age = time.time() - modified
    return abs(age)  # from the "future": the clock was set back since, by that much
