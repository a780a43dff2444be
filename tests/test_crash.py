"""SIGKILL at many points of a game's life: a second process on the same spool delivers everything
accepted at least ``flush_interval + 150 ms`` before the kill, and counts no playtime twice.

The game runs in a child process and plays a script (sessions, steady frames of events, bursts of
thousands). After its hooks return it prints what they accepted and when, on the monotonic clock,
which Linux shares between processes, so the test compares those times with the kill's. The kill
point is chosen from those lines (or from what the service holds), never by sleeping. The service
during the game is healthy for some cases, so part was delivered before the kill, and failing or
hung for others, so the spool holds a backlog. Then a tracker in this process, on the same spool and
a healthy service, recovers and flushes; the two services' records together are what PlayCamp and
PlayFab would hold. One case also freezes the game (SIGSTOP) dozens of times before its kill and
reads the spool each time: a frozen process's spool is what a kill at that moment would leave.

Each kill point is run once (a module-scoped fixture); each test checks one guarantee against it.
"""

import collections
import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

import pytest

import playhooks
from playhooks.emulator import Emulator

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SIGKILL, and a monotonic clock shared by processes (Linux)"
)

FLUSH_INTERVAL = 0.1  # the game's flush_interval (the default)
GRACE = 0.150  # issue 8: what was accepted flush_interval + 150 ms before a kill is delivered
CHECKPOINT_INTERVAL = 0.5  # short, so sessions of a second or two are checkpointed several times
BURST = 3000
CHUNK = 100  # the game prints one line per this many events, timed after the last of them returned
RESTART_FLUSH = 20.0  # the most the second tracker may take to deliver what the first left
PLAYER = {"playfab_id": "4F1C2A9B7D3E8A61", "character_id": "8D2E0F4B1A6C9E37"}
# Retries in milliseconds, and never given up on: what is delivered late is still delivered.
FAST = playhooks.RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=10_000)
WALL_SLACK = 0.005  # seconds: endedAt is truncated to the millisecond, and wall and monotonic drift

GAME = textwrap.dedent(
    """
    import json, sys, time
    import playhooks

    url, spool, script, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
    tracker = playhooks.Tracker(
        [playhooks.PlayCamp("key:secret", url), playhooks.PlayFab("ABCD", "secret", url)],
        spool_dir=spool,
        flush_interval=settings["flush_interval"],
        checkpoint_interval=settings["checkpoint_interval"],
        read_timeout=30,
        retry=playhooks.RetryPolicy(base_delay=settings["retry_delay"], max_delay=0.05, max_attempts=10_000),
    )
    player, chunk = settings["player"], settings["chunk"]
    sessions = {}
    counter = 0

    def say(*words):
        sys.stdout.write(" ".join(map(str, words)) + "\\n")
        sys.stdout.flush()

    def events(count):
        global counter
        while count > 0:
            first, size = counter, min(count, chunk)
            for number in range(first, first + size):
                tracker.on_character_event("tick", body={"n": number}, **player)
            counter, count = first + size, count - size
            say("events", first, counter, time.monotonic())  # events first..counter-1 accepted by then

    def frames(seconds, per_frame):
        now = time.monotonic()
        end, next_frame = now + seconds, now
        while time.monotonic() < end:
            events(per_frame)
            next_frame += 1 / 60
            time.sleep(max(0.0, next_frame - time.monotonic()))  # the game's frame pacing

    say("ready", time.monotonic())
    for step, *arguments in script:
        if step == "start":
            before = time.monotonic()
            session = sessions[arguments[0]] = tracker.on_session_start(arguments[0], **player)
            say("start", session.id, arguments[0], before, time.monotonic())
        elif step == "end":
            session = sessions.pop(arguments[0])
            before = time.monotonic()
            tracker.on_session_end(session)
            say("end", session.id, before, time.monotonic())
        elif step == "burst":
            events(arguments[0])
        elif step == "frames":
            frames(*arguments)
        elif step == "mark":
            say("mark", arguments[0], time.monotonic(), counter)
    say("done", time.monotonic())
    """
)


class Game:
    """The game's process, and what its lines said its hooks accepted, on the shared monotonic clock."""

    def __init__(self, script: List[List[Any]], url: str, spool: str, stderr_path: str, retry_delay: float) -> None:
        settings = {
            "retry_delay": retry_delay,
            "flush_interval": FLUSH_INTERVAL,
            "checkpoint_interval": CHECKPOINT_INTERVAL,
            "player": PLAYER,
            "chunk": CHUNK,
        }
        self._stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", GAME, url, spool, json.dumps(script), json.dumps(settings)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._partial = b""
        self.accepted: Dict[int, float] = {}  # event number -> when its hook had returned (at the latest)
        self.started: Dict[str, Tuple[str, float, float]] = {}  # session id -> (user, before, after the hook)
        self.ended: Dict[str, Tuple[float, float]] = {}  # session id -> (before, after on_session_end)
        self.marks: Dict[str, Tuple[float, int]] = {}  # name -> (when, events accepted so far)
        self.done = False

    # -- reading what it says --------------------------------------------------------------------

    def read_until(self, predicate: Callable[["Game"], bool], timeout: float = 30.0) -> None:
        """Read lines as they come until ``predicate(self)`` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.done:
                raise AssertionError("the game finished its script before the kill point came")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                with open(self._stderr_path, encoding="utf-8", errors="replace") as file:
                    said = file.read()[-2000:]
                raise AssertionError(f"the kill point did not come within {timeout} s; the game said:\n{said}")

    def read_until_time(self, moment: float) -> None:
        """Keep reading lines (so the game never blocks on its pipe) until the monotonic ``moment``."""
        while True:
            remaining = moment - time.monotonic()
            if remaining <= 0:
                return
            self._read(remaining)
            if self.done:
                raise AssertionError("the game finished its script before the kill point came")

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False at the end of the output."""
        if not self._selector.select(timeout):
            return True
        data = os.read(self.process.stdout.fileno(), 1 << 16)
        if not data:
            return False
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._take(line.decode().split())
        return True

    def _take(self, words: List[str]) -> None:
        kind = words[0]
        if kind == "events":
            first, end, when = int(words[1]), int(words[2]), float(words[3])
            self.accepted.update(dict.fromkeys(range(first, end), when))
        elif kind == "start":
            self.started[words[1]] = (words[2], float(words[3]), float(words[4]))
        elif kind == "end":
            self.ended[words[1]] = (float(words[2]), float(words[3]))
        elif kind == "mark":
            self.marks[words[1]] = (float(words[2]), int(words[3]))
        elif kind == "done":
            self.done = True

    # -- ending it -------------------------------------------------------------------------------

    def kill(self) -> float:
        """SIGKILL now; returns the monotonic time just before the signal. Lines already written are read."""
        moment = time.monotonic()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)  # reaped: its pid is gone, as a crashed game's is
        while self._read(0.0) and self._selector.select(0):
            pass
        return moment

    def frozen(self, look: Callable[[], Any]) -> Any:
        """``look()`` while the game is stopped (SIGSTOP): its spool is then as a kill now would leave it."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            os.waitpid(self.process.pid, os.WUNTRACED)  # stopped: no thread of it runs any more
            return look()
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._selector.close()
        self.process.stdout.close()
        self._stderr.close()

    @property
    def events_seen(self) -> int:
        return len(self.accepted)


# -- kill points: each returns once it is time to kill ----------------------------------------------


def at_mark(name: str, after: float = 0.0) -> Callable[[Game, Emulator], None]:
    """Kill ``after`` seconds (on the monotonic clock) after the game passed the mark ``name``."""

    def wait(game: Game, service: Emulator) -> None:
        game.read_until(lambda g: name in g.marks)
        game.read_until_time(game.marks[name][0] + after)

    return wait


def within_burst(mark: str, accepted: int) -> Callable[[Game, Emulator], None]:
    """Kill as soon as the game says ``accepted`` events of the burst after ``mark`` returned."""

    def wait(game: Game, service: Emulator) -> None:
        game.read_until(lambda g: mark in g.marks and g.events_seen >= g.marks[mark][1] + accepted)

    return wait


def at_start(user: str) -> Callable[[Game, Emulator], None]:
    """Kill as soon as a session of ``user`` has started (after the mark ``open``)."""

    def wait(game: Game, service: Emulator) -> None:
        game.read_until(lambda g: "open" in g.marks and any(u == user for u, _, _ in g.started.values()))

    return wait


def holding(mark: str, route: str, script_delay: bool) -> Callable[[Game, Emulator], None]:
    """Kill while the service holds a request on ``route`` it will still answer (and record)."""

    def wait(game: Game, service: Emulator) -> None:
        game.read_until(lambda g: mark in g.marks)
        if script_delay:
            service.delay_next(1, seconds=HELD_SECONDS, route=route)
        assert service.wait_until(lambda e: e.counters["faults"] >= 1, timeout=10), "no request was ever held"

    return wait


HELD_SECONDS = 1.5  # a held request is answered (and recorded) this long after it arrived
FREEZE_GAPS = (0.003, 0.005, 0.007, 0.011)  # seconds between freezes, varied so they land all over the sender's cycle

PRELUDE = [["start", "ana"], ["frames", 0.7, 10], ["end", "ana"], ["start", "ben"], ["frames", 0.3, 10]]
BURST_SCRIPT = PRELUDE + [["mark", "burst"], ["burst", BURST], ["mark", "burst_end"], ["frames", 30, 10]]
AFTER_BURST = FLUSH_INTERVAL + GRACE + 0.01  # the moment the whole burst must be durable, and a hair


class Case(NamedTuple):
    name: str
    service: str  # during the game: healthy, 503 (every request), hang (every request), held_playcamp
    script: List[List[Any]]
    kill: Callable[[Game, Emulator], None]
    held: Optional[str] = None  # the route whose request is held at the kill, answered after it
    retry_delay: float = 0.01  # the game's RetryPolicy.base_delay
    freezes: int = 0  # spool snapshots taken with the game stopped (SIGSTOP), before the kill


CASES = [
    # The burst of issue 8: killed when all of it should be on disk, the game playing on.
    Case("burst_3000_then_250ms", "healthy", BURST_SCRIPT, at_mark("burst_end", AFTER_BURST)),
    Case("burst_3000_then_250ms_service_503", "503", BURST_SCRIPT, at_mark("burst_end", AFTER_BURST)),
    # Killed the moment the burst's last hook returned, every request hanging: earlier records stay.
    Case("right_after_burst_service_hung", "hang", BURST_SCRIPT, at_mark("burst_end")),
    # Killed halfway through the burst as the test reads it: the game or the worker is mid-burst.
    Case("mid_burst", "healthy", BURST_SCRIPT, within_burst("burst", BURST // 2)),
    # Two sessions open for a while: both recovered from checkpoints no staler than 2 intervals.
    Case(
        "sessions_open",
        "healthy",
        PRELUDE + [["start", "cyd"], ["frames", 1.5, 10], ["mark", "kill"], ["frames", 30, 10]],
        at_mark("kill"),
    ),
    # A session open through a burst, killed two checkpoint intervals after it.
    Case(
        "session_open_after_burst",
        "healthy",
        PRELUDE + [["burst", BURST], ["mark", "burst_end"], ["frames", 30, 10]],
        at_mark("burst_end", 2 * CHECKPOINT_INTERVAL),
    ),
    # Killed right after a session started (its checkpoint may not exist yet).
    Case(
        "right_after_session_start",
        "healthy",
        PRELUDE + [["frames", 0.4, 10], ["mark", "open"], ["start", "cyd"], ["frames", 30, 10]],
        at_start("cyd"),
    ),
    # Everything answered 503: a backlog of retried sessions and events, due again in milliseconds.
    Case(
        "backlog_service_503",
        "503",
        PRELUDE
        + [["frames", 0.4, 10], ["end", "ben"], ["start", "ana"], ["burst", 1000], ["frames", 0.6, 10], ["mark", "kill"]]
        + [["frames", 30, 10]],
        at_mark("kill"),
    ),
    # Everything answered 503 and retried at once, nothing new coming: the sender does nothing but
    # claim, fail and settle. Frozen 100 times (each a kill point as far as the spool can tell), then killed.
    Case(
        "settling_failures",
        "503",
        PRELUDE + [["end", "ben"], ["burst", 200], ["frames", 0.3, 10], ["mark", "idle"], ["frames", 30, 0]],
        at_mark("idle", 0.2),
        retry_delay=0.0,
        freezes=100,
    ),
    # The sender mid-request: PlayCamp holds a session it will record after the kill.
    Case(
        "playcamp_request_in_flight",
        "held_playcamp",
        PRELUDE + [["mark", "ended"], ["frames", 30, 10]],
        holding("ended", "playcamp", script_delay=False),
        held="playcamp",
    ),
    # The sender mid-request: PlayFab holds an event it will record after the kill.
    Case(
        "playfab_request_in_flight",
        "healthy",
        PRELUDE + [["mark", "hold"], ["frames", 30, 10]],
        holding("hold", "playfab", script_delay=True),
        held="playfab",
    ),
]


class Crash:
    """What one kill left behind, and what the services hold after a second tracker's recovery."""

    def __init__(self, game: Game, killed_at: float, spool: str) -> None:
        self.game = game
        self.killed_at = killed_at
        self.cutoff = killed_at - (FLUSH_INTERVAL + GRACE)
        self.in_flight: Set[Any] = set()  # event numbers and session ids in claimed/ at the kill
        self.checkpoints: Dict[str, Dict[str, Any]] = {}  # session id -> checkpoint state at the kill
        self.copies: Set[Any] = set()  # event numbers and session ids in two spool files at the kill (or a freeze)
        self.on_disk = 0  # events in the spool's queue/ and claimed/ at the kill
        self.events: List[int] = []  # Body["n"] of every event both services recorded, repeats included
        self.sessions: Dict[str, Dict[str, Any]] = {}  # by sessionId, the first row kept, as PlayCamp does
        self.resent_sessions: List[str] = []  # sessionIds that reached both services
        self.restart_repeats: List[int] = []  # events the restarted tracker sent twice
        self.restart_session_repeats = 0  # sessions the restarted tracker sent twice
        self.remaining = 0
        self.stats: Dict[str, Any] = {}
        self.leftovers: List[str] = []
        self._read_spool(spool)

    def _read_spool(self, spool: str) -> None:
        self.in_flight, self.copies, self.on_disk = spool_records(spool)
        folder = os.path.join(spool, "sessions")
        for name in _listdir(folder):
            with open(os.path.join(folder, name), encoding="utf-8") as file:
                state = json.load(file)
            self.checkpoints[state["session_id"]] = state

    def collect(self, during: Emulator, after: Emulator, spool: str) -> None:
        for service in (during, after):
            self.events.extend(event["Body"]["n"] for event in service.events)
            for session in service.sessions:
                if session["sessionId"] in self.sessions:
                    self.resent_sessions.append(session["sessionId"])
                else:
                    self.sessions[session["sessionId"]] = session
        # What the restarted tracker alone sent twice: no crash stood between its two sends.
        repeats = collections.Counter(event["Body"]["n"] for event in after.events)
        self.restart_repeats = sorted(n for n, times in repeats.items() if times > 1)
        self.restart_session_repeats = after.counters["duplicates"]
        for root, _, files in os.walk(spool):
            if os.path.basename(root) in ("queue", "claimed", "sessions", "tmp"):
                self.leftovers.extend(os.path.join(root, name) for name in files)

    @property
    def open_at_kill(self) -> Dict[str, Tuple[str, float, float]]:
        return {sid: started for sid, started in self.game.started.items() if sid not in self.game.ended}

    def summary(self) -> str:
        repeated = len(self.events) - len(set(self.events))
        last = max(self.game.accepted.values(), default=self.killed_at)
        return (
            f"killed {self.killed_at - last:.3f} s after the last event returned;"
            f" {self.game.events_seen} events and {len(self.game.started)} sessions accepted;"
            f" at the kill: {self.on_disk} events on disk, {len(self.in_flight)} records in claimed/,"
            f" {len(self.copies)} in two files, {len(self.checkpoints)} checkpoints;"
            f" PlayFab repeats: {repeated} ({len(self.restart_repeats)} by the restart alone);"
            f" PlayCamp resends: {len(self.resent_sessions)} ({self.restart_session_repeats} by the restart alone);"
            f" restart: pending {self.remaining}, recovered {self.stats.get('recovered_sessions')},"
            f" dropped {self.stats.get('dropped')}"
        )


def spool_records(spool: str) -> Tuple[Set[Any], Set[Any], int]:
    """What a process that stopped now left in the spool: (event numbers and session ids in claimed/,
    those in two files, how many events are in queue/ or claimed/)."""
    in_flight: Set[Any] = set()
    copies: Set[Any] = set()
    seen: Set[Any] = set()
    events = 0
    for destination in ("playcamp", "playfab"):
        for part in ("claimed", "queue"):
            folder = os.path.join(spool, destination, part)
            for name in _listdir(folder):
                with open(os.path.join(folder, name), encoding="utf-8") as file:
                    for line in file:
                        data = json.loads(line)["data"]
                        key = data["Body"]["n"] if destination == "playfab" else data["sessionId"]
                        if key in seen:
                            copies.add(key)
                        seen.add(key)
                        events += destination == "playfab"
                        if part == "claimed":
                            in_flight.add(key)
    return in_flight, copies, events


def _listdir(folder: str) -> List[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def _wall(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _ranges(numbers: List[int]) -> str:
    """``[3, 4, 5, 9]`` as ``3..5, 9``: a readable list of what is missing."""
    spans: List[List[int]] = []
    for number in sorted(numbers):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in spans[:20]) + (" ..." if len(spans) > 20 else "")


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.name)
def crash(request, tmp_path_factory):
    """Run the game, kill it at the case's point, recover on the same spool; what came of it."""
    case: Case = request.param
    folder = tmp_path_factory.mktemp(case.name)
    spool = str(folder / "spool")
    with Emulator() as during, Emulator() as after:
        if case.service == "503":
            during.fail_next(10**9, 503)
        elif case.service == "hang":
            during.hang_next(10**9, seconds=60)
        elif case.service == "held_playcamp":
            during.delay_next(1, seconds=HELD_SECONDS, route="playcamp")
        game = Game(case.script, during.url, spool, str(folder / "game-stderr.txt"), case.retry_delay)
        copies: Set[Any] = set()
        try:
            case.kill(game, during)
            for number in range(case.freezes):
                game.read_until_time(time.monotonic() + FREEZE_GAPS[number % len(FREEZE_GAPS)])
                copies |= game.frozen(lambda: spool_records(spool)[1])
            killed_at = game.kill()
        finally:
            game.close()
        held_events, held_sessions = len(during.events), during.counters["sessions"] + during.counters["duplicates"]
        outcome = Crash(game, killed_at, spool)
        outcome.copies |= copies
        if case.held == "playfab":  # the held request is answered after the kill, and recorded
            assert during.wait_until(lambda e: len(e.events) > held_events, timeout=10)
        elif case.held == "playcamp":
            assert during.wait_until(lambda e: e.counters["sessions"] + e.counters["duplicates"] > held_sessions, timeout=10)

        restarted = playhooks.Tracker(
            [playhooks.PlayCamp("key:secret", after.url), playhooks.PlayFab("ABCD", "secret", after.url)],
            spool_dir=spool,
            retry=FAST,
        )
        try:
            outcome.remaining = restarted.flush(timeout=RESTART_FLUSH)
            outcome.stats = restarted.stats()
        finally:
            restarted.close(timeout=5)
        outcome.collect(during, after, spool)
    print(f"\n{case.name}: {outcome.summary()}")
    return outcome


class TestCrash:
    def test_every_event_accepted_in_time_is_delivered(self, crash):
        """Each event whose hook returned flush_interval + 150 ms before the kill reached PlayFab."""
        due = [n for n, when in crash.game.accepted.items() if when <= crash.cutoff]
        delivered = set(crash.events)
        lost = [n for n in due if n not in delivered]
        newest_lost = max((crash.game.accepted[n] for n in lost), default=crash.killed_at)

        assert [] == lost, (
            f"{len(lost)} of {len(due)} events accepted in time were never delivered: {_ranges(lost)};"
            f" the newest of them was accepted {crash.killed_at - newest_lost:.3f} s before the kill ({crash.summary()})"
        )

    def test_every_session_ended_in_time_is_delivered_whole(self, crash):
        """Each session ended flush_interval + 150 ms before the kill reached PlayCamp with all its playtime."""
        wrong = []
        for session_id, (end_before, end_after) in crash.game.ended.items():
            if end_after > crash.cutoff:
                continue
            _, start_before, start_after = crash.game.started[session_id]
            if end_before - start_after < 0.5:
                continue  # maybe under half a second: not sent (session_too_short)
            row = crash.sessions.get(session_id)
            if row is None:
                wrong.append(f"{session_id}: never delivered")
            elif not end_before - start_after - 0.5 <= row["durationSeconds"] <= end_after - start_before + 0.5:
                wrong.append(f"{session_id}: {row['durationSeconds']} s for {end_after - start_before:.3f} s of play")

        assert [] == wrong, crash.summary()

    def test_open_sessions_are_recovered_from_fresh_checkpoints(self, crash):
        """A session open at the kill and checkpointed is sent as recovered; one open longer than two
        checkpoint intervals lost at most two intervals of its playtime."""
        wrong = []
        for session_id, (user, start_before, start_after) in crash.open_at_kill.items():
            played = crash.killed_at - start_after
            checkpoint = crash.checkpoints.get(session_id)
            row = crash.sessions.get(session_id)
            if checkpoint is None:
                if played > 2 * CHECKPOINT_INTERVAL:
                    wrong.append(f"{user}: open {played:.3f} s, never checkpointed")
                continue
            if checkpoint["active_seconds"] < 0.5:
                continue  # too short to send: counted as session_too_short
            if row is None or not row.get("metadata", {}).get("playhooks_recovered"):
                wrong.append(f"{user}: checkpointed at {checkpoint['active_seconds']:.3f} s, not recovered: {row}")
                continue
            kept = _wall(row["endedAt"]) - _wall(row["startedAt"])
            if played > 2 * CHECKPOINT_INTERVAL and kept < played - 2 * CHECKPOINT_INTERVAL - WALL_SLACK:
                wrong.append(f"{user}: recovered {kept:.3f} s of {played:.3f} s (checkpoint staler than 2 intervals)")

        assert [] == wrong, crash.summary()

    def test_no_playtime_is_counted_twice(self, crash):
        """PlayCamp holds only sessions the game played; per user none overlap, and their durations
        add up to no more than the time the user really played."""
        played: Dict[str, float] = {}
        count: Dict[str, int] = {}
        for session_id, (user, start_before, _) in crash.game.started.items():
            end = crash.game.ended.get(session_id, (None, crash.killed_at))[1]
            played[user] = played.get(user, 0.0) + end - start_before
            count[user] = count.get(user, 0) + 1
        unknown = sorted(set(crash.sessions) - set(crash.game.started))
        by_user: Dict[str, List[Dict[str, Any]]] = {}
        for row in crash.sessions.values():
            by_user.setdefault(row["userId"], []).append(row)
        overlaps, excess = [], []
        for user, rows in by_user.items():
            rows.sort(key=lambda row: row["startedAt"])
            for earlier, later in zip(rows, rows[1:]):
                if _wall(earlier["endedAt"]) > _wall(later["startedAt"]) + WALL_SLACK:
                    overlaps.append((earlier["sessionId"], later["sessionId"]))
            total = sum(row["durationSeconds"] for row in rows)
            if total > played.get(user, 0.0) + 0.5 * count.get(user, 0):  # each rounds half up at most
                excess.append(f"{user}: {total} s counted for {played.get(user, 0.0):.3f} s played")

        assert ([], [], []) == (unknown, overlaps, excess), crash.summary()

    def test_only_what_was_in_flight_is_sent_twice(self, crash):
        """An event reaches PlayFab twice only if it was being sent (claimed) when the process died:
        the dead process may have delivered it. A session may also come again from a checkpoint
        that outlived its end by a moment (PlayCamp keeps the first)."""
        repeated = sorted(n for n, times in collections.Counter(crash.events).items() if times > 1)
        needless_events = [n for n in repeated if n not in crash.in_flight]
        needless_sessions = [sid for sid in crash.resent_sessions if sid not in crash.in_flight and sid not in crash.checkpoints]

        assert ([], []) == (needless_events, needless_sessions), crash.summary()

    def test_the_spool_never_holds_a_record_twice(self, crash):
        """At the kill (and at each freeze) no record is in two spool files, so the second tracker,
        which no crash interrupts, sends each event once."""
        assert (set(), []) == (crash.copies, crash.restart_repeats), crash.summary()

    def test_the_restart_delivers_everything_and_leaves_the_spool_empty(self, crash):
        """The second tracker's bounded flush leaves nothing pending, drops nothing but sessions too
        short to send, and leaves no file in the queue, claimed/, sessions/ or tmp/."""
        dropped = {reason: n for reason, n in crash.stats["dropped"].items() if reason != "session_too_short"}

        assert (0, {}, []) == (crash.remaining, dropped, crash.leftovers), crash.summary()
