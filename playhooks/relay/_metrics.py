"""The relay's counters for ``/metrics``, summed across worker processes through one folder.

Under gunicorn several worker processes answer requests, and a scrape reaches any one of them, so
each must answer with every worker's counts. ``prometheus_client`` would need its multiprocess
directory and hooks in every server; small files are simpler::

    FOLDER/
      <owner>.json              one live (or dead, not yet taken in) process's counts
      <claimer>~<origin>.json   <origin>'s counts, being taken in by <claimer>
      .<owner>.tmp              a file being written
      .lock                     held while files are taken in, or all read
      <name>.bad                a file that could not be read, set aside

- Each process counts in memory (``count`` is a lock and an add) and writes its totals to its own
  file, atomically (a temporary file, then ``os.replace``), every ``write_interval`` when they
  changed. Whoever answers ``/metrics`` adds its own counts from memory to every other file.
- Before answering, a process writes what it is about to report. Its file is then never behind
  what it has shown, so a counter never goes back between two scrapes answered by two workers.
- A process that ended (a worker restarted) leaves its file. Counters must not fall when it goes,
  so a live process takes it in (``absorb``): it claims the file by renaming it to
  ``<itself>~<origin>.json`` (a rename succeeds for one process only), adds its counts to its own,
  writes its own file listing the claim under ``absorbed``, then deletes the claim. A reader counts
  a claim only when its claimer's file does not list it, so at every step each count is in exactly
  one place. A process that died half way through taking in leaves claims of its own: whoever takes
  it in deletes those its file lists (already in its counts) and claims the others on to itself.
- Taking in holds ``FOLDER/.lock`` exclusively and reading it shared (``flock``, which the
  system lets go of when a process dies), so a scrape never sees a file half taken in. The rules
  above still hold without it: where there is no ``fcntl`` (Windows, where the relay runs as one
  process anyway), or when the lock stays taken longer than a couple of seconds (a hung disk), a
  reader lists the folder before and after reading and reads again when the two differ or a file
  went while being read. After a few tries it answers with its last reading, which may count a
  file taken in at that moment once too few or too many times: that is the only window, and it
  needs a folder without locks.
- Which owners are dead is the caller's ``is_alive`` to say (by default none, and files are kept
  forever). It must never call a live owner dead: that owner would write its file again, and its
  counts would be in two places.
- The last counts of a process killed between two writes are lost (at most ``write_interval``,
  and never any a scrape has shown). A file that cannot be read (a hostile disk) is skipped and
  logged once, and one of a dead owner is set aside as ``.bad``; ``/metrics`` never fails for it.

Only the counters declared in ``COUNTERS``, with their labels, can be counted: no key, secret or
player id can reach the page by way of a label.
"""

import contextlib
import json
import logging
import math
import os
import re
import threading
import time
from typing import Callable, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Set, Tuple, Union

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["CONTENT_TYPE", "COUNTERS", "Metrics", "PREFIX"]

log = logging.getLogger("playhooks")

PREFIX = "playhooks_relay_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The relay's counters: name as counted (exported as PREFIX + name + "_total") -> (help, labels).
COUNTERS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "accepted": ("Payloads the relay stored durably, by service.", ("service",)),
    "forwarded": ("Payloads delivered upstream, by service.", ("service",)),
    "rejected": ("Requests or payloads refused, by service and reason.", ("service", "reason")),
    "upstream_errors": (
        'Upstream answers that were not a success, by service and HTTP status ("none": no answer).',
        ("service", "status"),
    ),
    "config_reloads": ('Configuration reloads, by result ("ok" or "failed").', ("result",)),
}

_Key = Tuple[str, Tuple[str, ...]]  # (counter, label values in COUNTERS' order)
Gauge = Tuple[str, str, Mapping[str, str], Union[int, float]]  # (full name, help, labels, value)

_FORMAT = 1
_MAX_FILE_BYTES = 4 * 1024 * 1024  # far above any real file: a bigger one is not ours
_READ_ATTEMPTS = 5
_LOCK_SECONDS = 2.0  # the longest a scrape or a round of taking in waits for the folder's lock
_LOCK_POLL_SECONDS = 0.005
_MAX_SAID = 1000  # problems remembered as already logged
_SEPARATOR = "~"
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_FILE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,99})(?:~([A-Za-z0-9][A-Za-z0-9._-]{0,99}))?\.json")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _always_alive(owner: str) -> bool:
    return True


class Metrics:
    """One process's relay counters, and the sum of every process's for ``/metrics``. Thread-safe.

    Args:
        folder: the folder the processes share (made if missing); None counts in memory only, for
            a relay that runs as one process.
        owner: this process's id, unique across processes and restarts (``_owners.new_owner``);
            letters, digits, ``.``, ``_`` and ``-``.
        write_interval: seconds between two writes of this process's file, by ``start``'s thread.
        is_alive: whether the process ``owner`` may still write its file; files of the others are
            taken in. By default every owner is alive and files stay forever.
        absorb_interval: seconds between two looks for files of processes that ended.

    Raises:
        ValueError: an owner that cannot be a file name here.
    """

    def __init__(
        self,
        folder: Optional[str],
        owner: str,
        write_interval: float = 1.0,
        is_alive: Callable[[str], bool] = _always_alive,
        absorb_interval: float = 60.0,
    ) -> None:
        if not (isinstance(owner, str) and _OWNER.fullmatch(owner)):
            raise ValueError(f"an owner is 1 to 100 letters, digits, '.', '_' or '-': {owner!r}")
        self.folder = None if folder is None else os.path.abspath(folder)
        self.owner = owner
        self.write_interval = write_interval
        self.absorb_interval = absorb_interval
        self._is_alive = is_alive
        # Lock order: _absorb_lock, then _write_lock, then _lock.
        self._lock = threading.Lock()  # the counts, and the claims counted in them
        self._write_lock = threading.Lock()  # this process's file
        self._absorb_lock = threading.Lock()  # taking files in, and reading them all
        self._counts: Dict[_Key, int] = {}
        self._version = 0  # changes with the counts
        self._claims: Set[str] = set()  # claims whose counts are in _counts, until deleted
        self._written_version: Optional[int] = None
        self._written_claims: FrozenSet[str] = frozenset()  # the claims the file on disk lists
        self._said: Set[Tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # Counting, on every request.

    def count(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add ``amount`` to the counter ``name`` (a key of ``COUNTERS``) with these labels.

        Raises:
            ValueError: an unknown counter, a missing or unknown label, a negative amount.
            TypeError: a label value that is not a string, an amount that is not an int.
        """
        try:
            label_names = COUNTERS[name][1]
        except KeyError:
            raise ValueError(f"unknown relay counter {name!r}") from None
        if len(labels) != len(label_names) or not all(label in labels for label in label_names):
            raise ValueError(f"{name} is counted with exactly the labels {label_names}, not {tuple(labels)}")
        values = tuple(labels[label] for label in label_names)
        if not all(type(value) is str for value in values):
            raise TypeError(f"label values are strings: {values!r}")
        if type(amount) is not int:
            raise TypeError(f"a counter goes up by an int, not {amount!r}")
        if amount < 0:
            raise ValueError(f"a counter never goes down: {amount!r}")
        key = (name, values)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount
            self._version += 1

    # The page.

    def totals(self) -> Dict[str, Dict[Tuple[str, ...], int]]:
        """Every process's counts summed: counter -> label values (in ``COUNTERS``' order) -> count.

        Writes this process's file first, so what is returned is never ahead of it (see the module).
        """
        totals: Dict[str, Dict[Tuple[str, ...], int]] = {name: {} for name in COUNTERS}
        for (name, values), amount in self._collect().items():
            totals[name][values] = amount
        return totals

    def render(self, gauges: Iterable[Gauge] = ()) -> str:
        """The ``/metrics`` page, in the text exposition format 0.0.4 (served as ``CONTENT_TYPE``).

        Args:
            gauges: values the caller computes at each scrape, as ``(name, help, labels, value)``
                with the metric's full name (``playhooks_relay_pending_records``); samples of one
                name are grouped under the first one's help.

        Raises:
            ValueError: a gauge whose name or label names the format does not allow, or whose name
                is one of the counters'.
            TypeError: a gauge value that is not a number.
        """
        grouped: Dict[str, Tuple[str, List[Tuple[Mapping[str, str], Union[int, float]]]]] = {}
        counter_names = {_exported(name) for name in COUNTERS}
        for name, help_text, labels, value in gauges:
            if not _METRIC_NAME.fullmatch(name) or name in counter_names:
                raise ValueError(f"not a gauge name this page can have: {name!r}")
            for label in labels:
                if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                    raise ValueError(f"not a label name: {label!r}")
            if isinstance(value, bool):
                value = int(value)
            elif not isinstance(value, (int, float)):
                raise TypeError(f"a gauge's value is a number: {value!r}")
            grouped.setdefault(name, (help_text, []))[1].append((labels, value))

        counts = self._collect()
        lines: List[str] = []
        for name, (help_text, label_names) in COUNTERS.items():
            exported = _exported(name)
            lines.append(f"# HELP {exported} {_escape_help(help_text)}")
            lines.append(f"# TYPE {exported} counter")
            samples = sorted((values, amount) for (counter, values), amount in counts.items() if counter == name)
            for values, amount in samples:
                lines.append(f"{exported}{_labels(zip(label_names, values))} {amount}")
        for name, (help_text, samples) in grouped.items():
            lines.append(f"# HELP {name} {_escape_help(help_text)}")
            lines.append(f"# TYPE {name} gauge")
            for labels, value in samples:
                lines.append(f"{name}{_labels(labels.items())} {_number(value)}")
        return "\n".join(lines) + "\n"

    # The file, and the thread that writes it.

    def start(self) -> None:
        """Write this process's file, take in files of processes that ended, and keep doing both
        on a daemon thread. Nothing to do without a folder."""
        if self.folder is None or self._thread is not None:
            return
        self.write()
        self.absorb()
        self._thread = threading.Thread(target=self._run, name="playhooks-relay-metrics", daemon=True)
        self._thread.start()

    def write(self) -> bool:
        """Write this process's file now, if its counts changed. False when the disk refused (logged)."""
        if self.folder is None:
            return True
        with self._write_lock:
            return self._write_locked()[0]

    def close(self, timeout: Optional[float] = 5.0) -> None:
        """Stop the thread and write a last time, so a worker that stops cleanly loses nothing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.write()

    def absorb(self) -> int:
        """Take in the files of processes ``is_alive`` says ended. Returns how many files were taken.

        Safe against other processes doing the same at the same time, and against any of them
        (this one included) dying at any step: see the module's docstring.
        """
        if self.folder is None:
            return 0
        with self._absorb_lock:
            with self._write_lock:
                if self._written_version is None and not self._write_locked(force=True)[0]:
                    return 0  # no file of ours yet: a claim must never be older than the file that lists it
            with self._folder_lock(shared=False) as locked:
                if not locked:
                    return 0  # another process is taking files in, or reading for ever: next time
                return self._absorb_locked()

    def _absorb_locked(self) -> int:
        assert self.folder is not None
        owners, claims = _sorted_out(self._list())
        for owner in sorted(owners):
            if owner != self.owner and not self._alive(owner):
                self._take_over(owner, claims.get(owner, ()))
        taken = self._count_own_claims()
        if self._claims:
            with self._write_lock:
                # Synced, whatever the thread wrote meanwhile: a power cut must not keep the
                # deletions below and lose the file that counts what was deleted.
                if not self._write_locked(force=True, durable=True)[0]:
                    return taken  # the claims stay, and are counted from their files meanwhile
                deletable = self._claims & self._written_claims
            for claim in sorted(deletable):
                if _remove(os.path.join(self.folder, claim)):
                    with self._lock:
                        self._claims.discard(claim)
                        self._version += 1  # so the next write stops listing it
        return taken

    def _run(self) -> None:
        next_absorb = time.monotonic() + self.absorb_interval
        while not self._stop.wait(self.write_interval):
            try:
                self.write()
                if time.monotonic() >= next_absorb:
                    next_absorb = time.monotonic() + self.absorb_interval
                    self.absorb()
            except Exception:  # the thread must outlive a bug: /metrics would freeze without a word
                self._say("thread", "relay metrics: writing failed", level=logging.ERROR, exc_info=True)

    def _write_locked(self, force: bool = False, durable: bool = False) -> Tuple[bool, Dict[_Key, int]]:
        """Write the counts if they changed since the last write; returns (written, the counts)."""
        with self._lock:
            version, counts, claims = self._version, dict(self._counts), frozenset(self._claims)
        if version == self._written_version and not force:
            return True, counts
        data = json.dumps(
            {
                "format": _FORMAT,
                "owner": self.owner,
                "counts": [[name, list(values), amount] for (name, values), amount in sorted(counts.items())],
                "absorbed": sorted(claims),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        assert self.folder is not None
        try:
            _write_atomically(self.folder, f"{self.owner}.json", f".{self.owner}.tmp", data, durable)
        except OSError as error:
            self._say("write", "relay metrics: cannot write %s: %s", self.folder, error)
            return False, counts
        self._written_version, self._written_claims = version, claims
        return True, counts

    # Reading every process's file.

    def _collect(self) -> Dict[_Key, int]:
        if self.folder is None:
            with self._lock:
                return dict(self._counts)
        with self._absorb_lock:  # this process's claims are then either in its counts or absent
            with self._write_lock:
                own = self._write_locked()[1]
            with self._folder_lock(shared=True):
                others = self._read_others()
        for key, amount in others.items():
            own[key] = own.get(key, 0) + amount
        return own

    def _read_others(self) -> Dict[_Key, int]:
        total: Dict[_Key, int] = {}
        for _ in range(_READ_ATTEMPTS):
            names = self._list()
            total, complete = self._read_all(names)
            if complete and self._list() == names:
                return total
        log.debug("relay metrics: %s kept changing while being read; answering with the last reading", self.folder)
        return total

    def _read_all(self, names: FrozenSet[str]) -> Tuple[Dict[_Key, int], bool]:
        """Sum the files ``names`` but this process's; False when one went while being read."""
        owners, claims = _sorted_out(names)
        total: Dict[_Key, int] = {}
        listed: Dict[str, FrozenSet[str]] = {}
        complete = True
        for owner in owners:
            if owner == self.owner:
                continue
            try:
                counts, absorbed = self._read(f"{owner}.json")
            except FileNotFoundError:
                complete = False  # taken in meanwhile: read the rest, for a fallback that is close
                continue
            except (OSError, ValueError):
                continue
            listed[owner] = absorbed
            _add(total, counts)
        for claimer, claim_names in claims.items():
            if claimer == self.owner:
                continue
            for claim in claim_names:
                if claim in listed.get(claimer, ()):
                    continue  # already in its claimer's counts
                try:
                    counts = self._read(claim)[0]
                except FileNotFoundError:
                    complete = False
                    continue
                except (OSError, ValueError):
                    continue
                _add(total, counts)
        return total, complete

    def _read(self, name: str) -> Tuple[Dict[_Key, int], FrozenSet[str]]:
        """A file's counts and the claims it lists. ``FileNotFoundError`` when it is gone; another
        ``OSError`` or ``ValueError`` (logged once) when it cannot be read or was not written here."""
        assert self.folder is not None
        try:
            with open(os.path.join(self.folder, name), "rb") as file:
                data = file.read(_MAX_FILE_BYTES + 1)
            return _parse(data)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as error:
            self._say(name, "relay metrics: skipping %s, which cannot be read: %s", name, error)
            raise

    # Taking in files of processes that ended.

    @contextlib.contextmanager
    def _folder_lock(self, shared: bool) -> Iterator[bool]:
        """Hold ``FOLDER/.lock``: shared to read every file, exclusive to take files in. Yields
        whether it is held.

        Readers then never see a file half taken in. The wait is bounded: a process stuck with the
        lock (a hung disk) must not hang /metrics. Without it, or without ``fcntl`` (Windows, where
        the relay runs as one process), readers fall back on reading until the folder is still.
        The system lets go of a dead process's lock.
        """
        assert self.folder is not None
        if fcntl is None:
            yield True
            return
        try:
            os.makedirs(self.folder, exist_ok=True)
            descriptor = os.open(os.path.join(self.folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            self._say("lock", "relay metrics: cannot open the lock in %s: %s", self.folder, error)
            yield shared  # reading needs no lock to be safe, only to be exact
            return
        try:
            deadline = time.monotonic() + _LOCK_SECONDS
            while True:
                try:
                    fcntl.flock(descriptor, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        locked = False
                        break
                    time.sleep(_LOCK_POLL_SECONDS)
                except OSError as error:
                    self._say("lock", "relay metrics: cannot lock %s: %s", self.folder, error)
                    locked = False
                    break
            if not locked:
                log.debug("relay metrics: %s stayed locked", self.folder)
            yield locked or shared
        finally:
            os.close(descriptor)  # lets go of the lock too

    def _alive(self, owner: str) -> bool:
        try:
            return bool(self._is_alive(owner))
        except Exception:
            self._say("is_alive", "relay metrics: is_alive(%r) failed; taken for alive", owner, exc_info=True)
            return True

    def _take_over(self, owner: str, its_claims: Iterable[str]) -> None:
        """Move a dead owner's file, and claims its file does not list, into claims of this process.

        Its claims go first: once its file is gone, nothing would say which of them it had counted.
        Any process taking the same owner in makes the same choices from the same (dead) file, and
        a rename or a removal that another did first fails harmlessly.
        """
        assert self.folder is not None
        try:
            absorbed: Optional[FrozenSet[str]] = self._read(f"{owner}.json")[1]
        except FileNotFoundError:
            return  # another process took it in
        except ValueError:
            absorbed = None  # not readable: none of its claims can be said to be in it
        except OSError:
            return  # perhaps readable later
        for claim in its_claims:
            path = os.path.join(self.folder, claim)
            if absorbed is not None and claim in absorbed:
                _remove(path)
            else:
                origin = claim[len(owner) + len(_SEPARATOR) : -len(".json")]
                _rename(path, os.path.join(self.folder, f"{self.owner}{_SEPARATOR}{origin}.json"))
        path = os.path.join(self.folder, f"{owner}.json")
        if absorbed is None:
            _rename(path, path + ".bad")
        else:
            _rename(path, os.path.join(self.folder, f"{self.owner}{_SEPARATOR}{owner}.json"))
        _remove(os.path.join(self.folder, f".{owner}.tmp"))

    def _count_own_claims(self) -> int:
        """Add this process's claims not yet counted to its counts."""
        assert self.folder is not None
        taken = 0
        for claim in sorted(_sorted_out(self._list())[1].get(self.owner, ())):
            if claim in self._claims:
                continue
            try:
                counts = self._read(claim)[0]
            except FileNotFoundError:
                continue
            except ValueError:
                path = os.path.join(self.folder, claim)
                _rename(path, path + ".bad")
                continue
            except OSError:
                continue
            with self._lock:
                _add(self._counts, counts)
                self._claims.add(claim)
                self._version += 1
            taken += 1
        return taken

    def _list(self) -> FrozenSet[str]:
        assert self.folder is not None
        try:
            return frozenset(name for name in os.listdir(self.folder) if _FILE.fullmatch(name))
        except FileNotFoundError:
            return frozenset()
        except OSError as error:
            self._say("list", "relay metrics: cannot list %s: %s", self.folder, error)
            return frozenset()

    def _say(self, kind: str, message: str, *args: object, level: int = logging.WARNING, exc_info: bool = False) -> None:
        """Log a problem once per kind (a file name, for a file): /metrics is scraped every few seconds."""
        with self._lock:
            first = (kind, message) not in self._said
            if first and len(self._said) < _MAX_SAID:
                self._said.add((kind, message))
        log.log(level if first else logging.DEBUG, message, *args, exc_info=exc_info)


def _exported(name: str) -> str:
    return f"{PREFIX}{name}_total"


def _sorted_out(names: Iterable[str]) -> Tuple[Set[str], Dict[str, Set[str]]]:
    """The owners with a file, and each claimer's claims, among the folder's names."""
    owners: Set[str] = set()
    claims: Dict[str, Set[str]] = {}
    for name in names:
        match = _FILE.fullmatch(name)
        if match is None:
            continue
        if match.group(2) is None:
            owners.add(match.group(1))
        else:
            claims.setdefault(match.group(1), set()).add(name)
    return owners, claims


def _parse(data: bytes) -> Tuple[Dict[_Key, int], FrozenSet[str]]:
    """A file's counts and the claims it lists; ``ValueError`` for anything not written by ``Metrics``.

    Counters this version does not know (a newer worker's, during a rolling restart) are left out.
    """
    if len(data) > _MAX_FILE_BYTES:
        raise ValueError("too big to be a metrics file")
    fields = json.loads(data.decode("utf-8"))
    if not (isinstance(fields, dict) and fields.get("format") == _FORMAT):
        raise ValueError("not a metrics file")
    entries, absorbed = fields.get("counts"), fields.get("absorbed")
    if not (isinstance(entries, list) and isinstance(absorbed, list)):
        raise ValueError("not a metrics file")
    if not all(isinstance(claim, str) for claim in absorbed):
        raise ValueError("absorbed names are strings")
    counts: Dict[_Key, int] = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 3):
            raise ValueError("a count is [counter, label values, amount]")
        name, values, amount = entry
        if not (isinstance(name, str) and isinstance(values, list) and all(type(value) is str for value in values)):
            raise ValueError("a count is [counter, label values, amount]")
        if type(amount) is not int or amount < 0:
            raise ValueError("a count is an int >= 0")
        if name not in COUNTERS or len(values) != len(COUNTERS[name][1]):
            continue
        key = (name, tuple(values))
        counts[key] = counts.get(key, 0) + amount
    return counts, frozenset(absorbed)


def _add(total: Dict[_Key, int], counts: Mapping[_Key, int]) -> None:
    for key, amount in counts.items():
        total[key] = total.get(key, 0) + amount


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs: Iterable[Tuple[str, str]]) -> str:
    text = ",".join(f'{name}="{_escape_value(str(value))}"' for name, value in pairs)
    return "{" + text + "}" if text else ""


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Union[int, float]) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _write_atomically(folder: str, name: str, temporary_name: str, data: bytes, durable: bool) -> None:
    """Replace ``folder/name`` with ``data`` whole. ``durable`` (before deleting what it now counts)
    also survives a power cut: the file and the rename are synced."""
    temporary = os.path.join(folder, temporary_name)
    for last_try in (False, True):
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                if durable:
                    file.flush()
                    os.fsync(file.fileno())
            os.replace(temporary, os.path.join(folder, name))
            if durable and os.name == "posix":
                descriptor = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
            return
        except FileNotFoundError:
            _remove(temporary)
            if last_try:
                raise
            os.makedirs(folder, exist_ok=True)  # not made yet, or deleted under us: once
        except OSError:
            _remove(temporary)
            raise


def _rename(source: str, destination: str) -> bool:
    """Rename; False when ``source`` is gone (another process took it) or the disk refused."""
    try:
        os.replace(source, destination)
        return True
    except OSError:
        return False


def _remove(path: str) -> bool:
    try:
        os.remove(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
