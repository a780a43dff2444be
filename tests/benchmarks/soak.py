"""The chaos soak (issue 13): games killed and restarted at random while the services misbehave, and
afterwards nothing accepted in time is lost and no playtime is counted twice.

    python tests/benchmarks/soak.py                  # the short run: about a minute
    python tests/benchmarks/soak.py --long           # the long run: about 25 minutes
    python tests/benchmarks/soak.py --rounds 30 --seed 7
    python tests/benchmarks/soak.py --self-check     # hides one delivered event, lengthens one session: must exit 1

Each game is a real process (``soak_game.py``) with a real ``Tracker`` and real ``PlayCamp`` and
``PlayFab`` sinks, sending to an ``Emulator`` that runs in this process on 127.0.0.1. Each slot
is one spool folder played by one game, and in some rounds by a second game beside it (two
processes sharing one spool). Every round, each game is SIGKILLed at a random moment and a new
one started in its place (some quit cleanly first, with ``close()``), while the emulator answers
503s and 429s with ``Retry-After``, drops connections, hangs, and answers some requests only after
the client has given up; it also fails a share of requests at random (``fault_rate``). The random
choices come from ``--seed``: a failing run is replayed with the seed its summary line prints
(the machine's timing still varies).

After the rounds, each spool's owner starts once more against a second, fault-free emulator and
drains the spool (a bounded ``flush``, then ``close``). What the two emulators hold together is
what the services would hold. Then:

- lost: each event or ended session a game accepted at least ``flush_interval`` + ``--grace``
  before its kill (the grace is issue 8's 150 ms), or before a ``flush()`` that returned 0, or
  before a clean ``close()``, must be there; so must a session open at a kill for longer than two
  checkpoint intervals (recovered from its checkpoint). Events are known by their body
  (``{"g": game, "n": number}``), sessions by ``sessionId``: the game writes each to its log
  after its hook returned, on the monotonic clock Linux shares between processes.
- double-counted sessions: per player, no two stored sessions overlap in time; every stored
  ``sessionId`` is one the game started; each emulator stored each ``sessionId`` once (resends
  are answered ``recorded: false``, and counted here as resends).
- playtime: each stored session's ``durationSeconds`` lies between what its game surely played
  (from the start's return to the end's call) and what it may have played (from the start's call
  to the end's return, or to the kill for a session recovered from its checkpoint), give or take
  the half second of rounding; a session whose end was not yet due at a kill may be stored from
  its checkpoint, shorter. The summary gives the totals stored and played.
- PlayFab duplicates: an event stored twice under one ``playhooks_event_id`` (PlayFab has no
  idempotency). Expected only after an ambiguous failure: a request answered after the client's
  read timeout, or a record its sender held (``claimed/``) when it was killed or exited. Those are
  counted and reported; any other duplicate, or one event stored under two ids, is a failure.

One summary line says what happened; the exit status is 1 for any failure, 0 otherwise.
"""

import argparse
import collections
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from playhooks.emulator import Emulator

import _support
from soak_game import records_of

HERE = os.path.dirname(os.path.abspath(__file__))
GAME = os.path.join(HERE, "soak_game.py")
# The games' settings: short intervals and retries, so a round's backlog goes out within the round.
FLUSH_INTERVAL = 0.1  # the default
CHECKPOINT_INTERVAL = 0.5
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 2.0
RETRY = {"base_delay": 0.05, "max_delay": 0.5, "max_attempts": 10_000}  # never given up on in a soak
GRACE = 0.150  # issue 8: what was accepted flush_interval + 150 ms before a kill is delivered
MIN_PLAY = 0.6  # seconds of play a session needs to be sent for sure (under half a second rounds to 0)
RECOVERABLE = 2 * CHECKPOINT_INTERVAL + MIN_PLAY  # open this long at a kill: its checkpoint must be sent
WALL_SLACK = 0.005  # seconds: endedAt is truncated to the millisecond, and wall and monotonic drift
# Faults: a "slow" answer comes after the client's read timeout; a "hang" drops after it.
SLOW_SECONDS = READ_TIMEOUT + 0.5
HANG_SECONDS = READ_TIMEOUT + 1.0
LATE = READ_TIMEOUT / 2  # an answer this late (seen from the server) may have come after the client gave up
FAULT_KINDS = {"503": 4, "429": 2, "drop": 3, "hang": 1, "slow": 1, "outage": 1}  # kind: weight
FAULT_RATE = 0.02  # the emulator's random faults (503, 500 or a dropped connection)
SHARE = 0.5  # the chance a slot has a second game on its spool in a round
QUIT = 0.1  # the chance a game quits cleanly (close()) after a session, its kill left to the next round
ROUND_SECONDS = 4.0  # a round lasts between half this and this
DRAIN_TIMEOUT = 60.0  # the most a final drain flushes
SHORT = {"rounds": 20, "max_seconds": 240.0}
LONG = {"rounds": 400, "max_seconds": 1620.0}
API_PATHS = ("/v1/server/playtime/sessions", "/v1/server/playtime/sessions/bulk", "/Server/WriteCharacterEvent")


class Witness(Emulator):
    """The emulator, also noting what each API request met: an error status, a dropped connection
    (quickly: ``drop``; after ``LATE``: ``hang``), or success after ``LATE`` (``slow``), and the ids
    of payloads stored by a request the client may have given up on."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.met: "collections.Counter[str]" = collections.Counter()
        self.late_ids: Set[str] = set()
        self._noting = threading.Lock()

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        if environ.get("PATH_INFO") not in API_PATHS:
            return super().__call__(environ, start_response)
        raw = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(raw)
        statuses: List[int] = []

        def answer(status: str, headers: Any, *exc_info: Any) -> Any:
            statuses.append(int(status.split()[0]))
            return start_response(status, headers, *exc_info)

        began = time.monotonic()
        try:
            return super().__call__(environ, answer)
        finally:
            self._note(raw, statuses, time.monotonic() - began)

    def stored(self) -> Dict[str, Any]:
        """What it holds and met, for a look after the run."""
        return {"sessions": self.sessions, "events": self.events, "counters": self.counters, "met": dict(self.met)}

    def _note(self, raw: bytes, statuses: List[int], seconds: float) -> None:
        if not statuses:
            kind = "hang" if seconds >= LATE else "drop"
        elif statuses[0] >= 400:
            kind = str(statuses[0])
        else:
            kind = "slow" if seconds >= LATE else ""
        with self._noting:
            if kind:
                self.met[kind] += 1
            if kind == "slow":
                self.late_ids.update(_payload_ids(raw))


def _payload_ids(raw: bytes) -> List[str]:
    """The sessionIds and playhooks_event_ids in a request body."""
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    items = data.get("sessions", [data]) if isinstance(data, dict) else []
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            body = item.get("Body")
            found.append(body.get("playhooks_event_id") if isinstance(body, dict) else item.get("sessionId"))
    return [found_id for found_id in found if isinstance(found_id, str)]


def script_fault(emulator: Emulator, kind: str, rng: random.Random) -> None:
    route = rng.choice((None, "playcamp", "playfab"))
    if kind == "503":
        emulator.fail_next(rng.randint(1, 8), 503, route=route)
    elif kind == "429":
        emulator.fail_next(rng.randint(1, 3), 429, route=route, headers={"Retry-After": str(rng.randint(0, 2))})
    elif kind == "drop":
        emulator.drop_next(rng.randint(1, 4), route=route)
    elif kind == "hang":
        emulator.hang_next(rng.randint(1, 2), route=route, seconds=HANG_SECONDS)
    elif kind == "slow":
        emulator.delay_next(rng.randint(1, 2), seconds=SLOW_SECONDS, route=route)
    else:  # an outage: a long run of 503s
        emulator.fail_next(rng.randint(30, 150), 503, route=route)


# -- the games -------------------------------------------------------------------------------------


class Game:
    """One game process, from its start to its kill or its exit."""

    def __init__(
        self, slot: "Slot", role: int, number: int, url: str, rng: random.Random, round_number: int = 0, drain: bool = False
    ) -> None:
        self.slot, self.role, self.round = slot, role, round_number
        self.tag = f"g{number}"
        self.log = os.path.join(slot.folder, f"{self.tag}.log")
        self.killed_at: Optional[float] = None  # the monotonic moment just before the kill
        self.claimed: Set[Tuple[str, str]] = set()  # records it held in claimed/ at the kill
        self.quits = False  # whether it quits on its own after a session: then its kill waits a round
        config = {
            "url": url,
            "spool": slot.spool,
            "log": self.log,
            "tag": self.tag,
            "user": f"player-s{slot.index}p{role}",
            "seed": rng.getrandbits(32),
            "quit_after": 1 if rng.random() < QUIT else None,
            "drain": drain,
            "drain_timeout": DRAIN_TIMEOUT,
            "settings": {
                "flush_interval": FLUSH_INTERVAL,
                "checkpoint_interval": CHECKPOINT_INTERVAL,
                "connect_timeout": CONNECT_TIMEOUT,
                "read_timeout": READ_TIMEOUT,
                "retry": RETRY,
            },
        }
        self.quits = config["quit_after"] is not None
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_support.ROOT, os.environ.get("PYTHONPATH")])))
        self._stderr = open(os.path.join(slot.folder, f"{self.tag}.stderr"), "wb")
        self.process = subprocess.Popen(
            [sys.executable, GAME, json.dumps(config)], stdout=subprocess.DEVNULL, stderr=self._stderr, env=environment
        )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> bool:
        """SIGKILL it, noting what it held in ``claimed/`` (read while it is stopped, so none of it
        changes hands meanwhile); False if it had already exited."""
        moment = time.monotonic()
        if not self.running:
            return False
        os.kill(self.process.pid, signal.SIGSTOP)
        _, status = os.waitpid(self.process.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):  # it exited between the look and the signal: reaped here
            self.process.returncode = os.waitstatus_to_exitcode(status)
            return False
        self.claimed = self.slot.claimed_by(self.process.pid)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.killed_at = moment
        return True

    def wait(self, timeout: float) -> Optional[int]:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def close(self) -> None:
        self._stderr.close()

    def stderr(self) -> str:
        with open(os.path.join(self.slot.folder, f"{self.tag}.stderr"), encoding="utf-8", errors="replace") as file:
            return file.read()


class Slot:
    """One spool folder, and the games playing on it (role 0 always, role 1 in some rounds)."""

    def __init__(self, index: int, root: str) -> None:
        self.index = index
        self.folder = os.path.join(root, f"slot{index}")
        self.spool = os.path.join(self.folder, "spool")
        os.makedirs(self.folder)
        self.playing: Dict[int, Game] = {}

    def claimed_by(self, pid: int) -> Set[Tuple[str, str]]:
        found = set()
        for destination in ("playcamp", "playfab"):
            folder = os.path.join(self.spool, destination, "claimed")
            for name in _listdir(folder):
                if name.startswith(f"{pid}."):
                    found.update(records_of(os.path.join(folder, name)))
        return found

    def leftovers(self) -> Dict[str, int]:
        """Files left where nothing should be once drained: the queues, claims, dead letters, quarantine."""
        counts = {}
        for part in ("playcamp/queue", "playcamp/claimed", "playfab/queue", "playfab/claimed", "dead", "quarantine"):
            files = _listdir(os.path.join(self.spool, part))
            if files:
                counts[part] = len(files)
        return counts


def _listdir(folder: str) -> List[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


class Soak:
    """The rounds, the final drain, and what the games and the emulators said."""

    def __init__(self, arguments: argparse.Namespace, root: str) -> None:
        self.arguments = arguments
        self.rng = random.Random(arguments.seed)
        self.root = root
        self.slots = [Slot(index, root) for index in range(arguments.slots)]
        self.games: List[Game] = []
        self.drains: List[Game] = []
        self.kills = 0
        self.rounds = 0
        self.scripted: "collections.Counter[str]" = collections.Counter()
        self.chaos = Witness(fault_rate=arguments.fault_rate, seed=arguments.seed)
        self.calm = Witness()

    def start(self, slot: Slot, role: int) -> None:
        game = Game(slot, role, len(self.games) + len(self.drains), self.chaos.url, self.rng, self.rounds)
        self.games.append(game)
        slot.playing[role] = game

    def run(self) -> None:
        with self.chaos:
            stop_at = time.monotonic() + self.arguments.max_seconds
            for _ in range(self.arguments.rounds):
                if time.monotonic() >= stop_at:
                    break
                self.play_round()
            for slot in self.slots:
                for game in slot.playing.values():
                    self.kills += game.kill()
            # A hung or slow request of a killed game ends (and may be stored) before anything is counted.
            self.chaos.wait_until(lambda e: not any(e.in_flight.values()), timeout=HANG_SECONDS + 10)
        with self.calm:
            for slot in self.slots:
                self.drains.append(Game(slot, 0, len(self.games) + len(self.drains), self.calm.url, self.rng, drain=True))
            for drain in self.drains:
                drain.wait(DRAIN_TIMEOUT + 60)
            self.calm.wait_until(lambda e: not any(e.in_flight.values()), timeout=10)
        for game in self.games + self.drains:
            game.close()

    def play_round(self) -> None:
        """Games started where wanted, each killed once at a random moment (and most restarted),
        and a few faults scripted at random moments."""
        rng = self.rng
        self.rounds += 1
        length = rng.uniform(ROUND_SECONDS / 2, ROUND_SECONDS)
        actions: List[Tuple[float, str, Any]] = []
        for slot in self.slots:
            share = rng.random() < SHARE
            for role in (0, 1) if share else (0,):
                if role not in slot.playing:
                    self.start(slot, role)
            for role, game in list(slot.playing.items()):
                if game.quits and game.round == self.rounds:
                    continue  # time to quit: killed next round if it has not
                restart = role == 0 or rng.random() < SHARE
                actions.append((rng.uniform(0.1, length), "kill", (slot, role, restart)))
        for _ in range(rng.randint(1, 4)):
            kind = rng.choices(list(FAULT_KINDS), weights=list(FAULT_KINDS.values()))[0]
            actions.append((rng.uniform(0.0, length), "fault", kind))
        began = time.monotonic()
        pause = threading.Event()  # the chaos's own schedule: random moments, not a synchronisation
        for offset, action, detail in sorted(actions, key=lambda action: action[0]):
            pause.wait(max(0.0, began + offset - time.monotonic()))
            if action == "fault":
                self.scripted[detail] += 1
                script_fault(self.chaos, detail, rng)
                continue
            slot, role, restart = detail
            self.kills += slot.playing.pop(role).kill()
            if restart:
                self.start(slot, role)
        pause.wait(max(0.0, began + length - time.monotonic()))


# -- what the logs say, and what the services hold ---------------------------------------------------


class Played:
    """What one game's log says its hooks accepted, and when."""

    def __init__(self, game: Game) -> None:
        self.game = game
        self.events: Dict[Tuple[str, int], float] = {}
        self.starting: List[Tuple[str, float]] = []
        self.started: Dict[str, Tuple[str, float, float]] = {}
        self.ended: Dict[str, Tuple[float, float]] = {}
        self.confirmed = float("-inf")  # the call time of the last flush() that returned 0
        self.closing: Optional[float] = None
        self.closed: Optional[int] = None
        self.closed_at: Optional[float] = None
        self.inflight: Set[Tuple[str, str]] = set()
        self.drained: Optional[Tuple[int, Dict[str, Any]]] = None
        self.made: Optional[float] = None  # when its Tracker was made
        self.stalls: List[Tuple[float, float]] = []  # (when, seconds) a frame woke late
        try:
            with open(game.log, encoding="utf-8") as file:
                lines = file.read().split("\n")[:-1]  # a last line without its newline was torn by the kill
        except FileNotFoundError:  # killed before it said anything
            lines = []
        for line in lines:
            self._take(line.split(" ", 3) if line.startswith("drained") else line.split())

    def _take(self, words: List[str]) -> None:
        kind = words[0]
        if kind == "stalled":
            self.stalls.append((float(words[2]), float(words[1])))
        if kind == "events":
            tag, first, end, when = words[1], int(words[2]), int(words[3]), float(words[4])
            self.events.update(((tag, number), when) for number in range(first, end))
        elif kind == "tracker":
            self.made = float(words[1])
        elif kind == "starting":
            self.starting.append((words[1], float(words[2])))
        elif kind == "start":
            self.started[words[1]] = (words[2], float(words[3]), float(words[4]))
        elif kind == "end":
            self.ended[words[1]] = (float(words[2]), float(words[3]))
        elif kind == "flush" and int(words[2]) == 0:
            self.confirmed = float(words[1])
        elif kind == "closing":
            self.closing = float(words[1])
        elif kind == "closed":
            self.closed, self.closed_at = int(words[1]), float(words[2])
        elif kind == "inflight":
            self.inflight.add((words[1], words[2]))
        elif kind == "drained":
            self.drained = (int(words[1]), json.loads(words[2]))

    @property
    def quit_cleanly(self) -> bool:
        return self.game.killed_at is None and self.closed is not None and self.game.process.returncode == 0

    def cutoff(self, grace: float) -> float:
        """Accepted by this moment: due."""
        if self.quit_cleanly:
            return float("inf")
        if self.game.killed_at is None:
            return self.confirmed  # only what a flush confirmed is promised
        return max(self.game.killed_at - FLUSH_INTERVAL - grace, self.confirmed)

    def stall(self, since: float) -> float:
        """How late the game's frames woke, at worst, from ``since`` to its kill: a process whose
        main thread was starved of the CPU that long likely had its worker starved too."""
        end = self.game.killed_at
        return max((seconds for when, seconds in self.stalls if since < when <= end), default=0.0)

    def sessions(self) -> Dict[str, Tuple[float, float]]:
        """Ended sessions, by sessionId: (start's return, end's call); those left open at a clean
        close() were ended by it."""
        ended = {sid: (self.started[sid][2], before) for sid, (before, _) in self.ended.items() if sid in self.started}
        if self.quit_cleanly and self.closing is not None:
            for sid, (_, _, after) in self.started.items():
                ended.setdefault(sid, (after, self.closing))
        return ended


class Check:
    """Everything the soak checks, from the games' logs and the two emulators."""

    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        grace = soak.arguments.grace
        self.played = [Played(game) for game in soak.games]
        self.problems: List[str] = []
        # What the services hold: PlayCamp keeps the first row per sessionId; PlayFab keeps every copy.
        self.sessions: Dict[str, Dict[str, Any]] = {}
        self.resent = 0
        for emulator in (soak.chaos, soak.calm):
            self.resent += emulator.counters["duplicates"]
            for row in emulator.sessions:
                if row["sessionId"] in self.sessions:
                    self.resent += 1
                else:
                    self.sessions[row["sessionId"]] = row
            if emulator.counters["sessions"] != len(emulator.sessions):
                self.problems.append(f"the emulator counted {emulator.counters['sessions']} sessions for {len(emulator.sessions)} sessionIds")
        events = [event for emulator in (soak.chaos, soak.calm) for event in emulator.events]
        self.copies = collections.Counter(event["Body"]["playhooks_event_id"] for event in events)
        self.ids_of: Dict[Tuple[str, int], Set[str]] = collections.defaultdict(set)
        for event in events:
            self.ids_of[(event["Body"]["g"], event["Body"]["n"])].add(event["Body"]["playhooks_event_id"])
        self.hidden: Optional[Tuple[str, int]] = None
        if soak.arguments.self_check:  # the check must see a loss: hide one event that was due and delivered
            due = sorted(
                key for played in self.played for key, when in played.events.items() if when <= played.cutoff(grace)
            )
            delivered = [key for key in due if key in self.ids_of]
            if delivered:
                self.hidden = delivered[0]
                del self.ids_of[self.hidden]
        self.inflated: Optional[str] = None
        if soak.arguments.self_check and self.sessions:  # and a miscount: one session a minute longer
            self.inflated = min(self.sessions)
            row = self.sessions[self.inflated]
            self.sessions[self.inflated] = dict(row, durationSeconds=row["durationSeconds"] + 60)
        self.lost = self._losses(grace)
        self.double_counted = self._double_counts()
        self.miscounted = self._playtime()
        self.duplicates, self.unexplained = self._playfab_duplicates()
        self._game_problems()

    # -- losses ------------------------------------------------------------------------------

    def _losses(self, grace: float) -> List[str]:
        lost = []
        self.events_accepted = self.events_due = self.events_delivered = 0
        self.sessions_accepted = self.sessions_due = self.sessions_delivered = 0
        for played in self.played:
            cutoff = played.cutoff(grace)
            end = played.game.killed_at
            age = "" if end is None or played.made is None else f", its tracker made {end - played.made:.3f} s before it"
            for key, when in played.events.items():
                self.events_accepted += 1
                self.events_delivered += key in self.ids_of
                if when <= cutoff:
                    self.events_due += 1
                    if key not in self.ids_of:
                        lost.append(f"event {key[0]}.{key[1]}: accepted {_before(end, when)}{age}{_stall(played, when)}")
            ended = played.sessions()
            for sid, (user, _, start_after) in played.started.items():
                self.sessions_accepted += 1
                self.sessions_delivered += sid in self.sessions
                if sid in ended:  # due once ended in time, if long enough to be sent
                    end_before = ended[sid][1]
                    end_after = played.ended[sid][1] if sid in played.ended else end_before
                    due = end_after <= cutoff and end_before - start_after >= MIN_PLAY
                    late = f"ended {_before(end, end_after)}{age}{_stall(played, end_after)}"
                else:  # open at the kill: due from its checkpoint once open long enough
                    due = end is not None and start_after <= end - RECOVERABLE - grace
                    late = f"open {end - start_after:.3f} s at the kill, never recovered" if due else ""
                if due:
                    self.sessions_due += 1
                    if sid not in self.sessions:
                        lost.append(f"session {sid}: {late}")
        return lost

    # -- playtime counted twice ------------------------------------------------------------

    def _double_counts(self) -> List[str]:
        wrong = []
        started = {sid: user for played in self.played for sid, (user, _, _) in played.started.items()}
        # A kill between on_session_start and its log line leaves a session the log never named.
        unnamed = collections.Counter(user for played in self.played for user, _ in played.starting)
        unnamed.subtract(user for user in started.values())
        by_user: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
        for sid, row in self.sessions.items():
            by_user[row["userId"]].append(row)
            if sid not in started:
                if unnamed[row["userId"]] > 0:
                    unnamed[row["userId"]] -= 1
                else:
                    wrong.append(f"session {sid} of {row['userId']}: no game started it")
        for user, rows in by_user.items():
            rows.sort(key=lambda row: row["startedAt"])
            for earlier, later in zip(rows, rows[1:]):
                if _wall(earlier["endedAt"]) > _wall(later["startedAt"]) + WALL_SLACK:
                    wrong.append(f"{user}: sessions {earlier['sessionId']} and {later['sessionId']} overlap")
        return wrong

    # -- playtime: each session's, and the totals ----------------------------------------------

    def _playtime(self) -> List[str]:
        """Each stored session's ``durationSeconds`` against the bounds its game's log puts on it:
        at least what was surely played between the start's return and the end's call (less the
        half second of rounding), at most what may have been between the start's call and the
        end's return (or the kill, for a session recovered from its checkpoint). An end accepted
        too close to a kill to be due bounds it from above only. Sums the totals."""
        wrong = []
        grace = self.soak.arguments.grace
        self.seconds_played = self.seconds_stored = 0.0
        for played in self.played:
            game = played.game
            ended = played.sessions()
            for sid, (user, start_before, start_after) in played.started.items():
                if sid in ended:  # by its end's call, or by close() at a clean quit
                    surely = ended[sid][1]
                    at_most = played.ended[sid][1] if sid in played.ended else played.closed_at
                    if at_most > played.cutoff(grace):  # ended too close to the kill: its checkpoint may stand in
                        surely = None
                elif game.killed_at is not None:  # open at the kill: its checkpoint may be older
                    surely, at_most = None, game.killed_at
                else:
                    continue
                self.seconds_played += (surely if surely is not None else at_most) - start_after
                row = self.sessions.get(sid)
                if row is None:
                    continue  # too short to send, or lost (counted as lost where it was due)
                stored = row["durationSeconds"]
                self.seconds_stored += stored
                if stored > at_most - start_before + 0.5:
                    wrong.append(f"session {sid} of {user}: {stored} s stored, at most {at_most - start_before:.3f} s played")
                elif surely is not None and stored < surely - start_after - 0.5:
                    wrong.append(f"session {sid} of {user}: {stored} s stored, at least {surely - start_after:.3f} s played")
        return wrong

    # -- PlayFab duplicates ---------------------------------------------------------------------

    def _playfab_duplicates(self) -> Tuple[int, List[str]]:
        ambiguous = set(self.soak.chaos.late_ids) | set(self.soak.calm.late_ids)
        for played in self.played:
            ambiguous |= {record_id for _, record_id in played.game.claimed | played.inflight}
        extra, unexplained = 0, []
        for event_id, copies in self.copies.items():
            if copies > 1:
                extra += copies - 1
                if event_id not in ambiguous:
                    unexplained.append(f"event id {event_id}: stored {copies} times, after no ambiguous failure")
        for key, ids in self.ids_of.items():
            if len(ids) > 1:
                unexplained.append(f"event {key[0]}.{key[1]}: stored under {len(ids)} event ids")
        return extra, unexplained

    @property
    def ambiguous_failures(self) -> int:
        met = self.soak.chaos.met
        held = sum(1 for game in self.soak.games if game.claimed)
        return met["drop"] + met["hang"] + met["slow"] + held

    # -- the games themselves ---------------------------------------------------------------------

    def _game_problems(self) -> None:
        for played in self.played:
            game = played.game
            if game.killed_at is None and not played.quit_cleanly:
                self.problems.append(f"{game.tag} exited on its own with code {game.process.returncode}: {game.stderr()[-300:]!r}")
        for drain, slot in zip(self.soak.drains, self.soak.slots):
            result = Played(drain).drained
            if result is None or result[0] != 0:
                self.problems.append(f"slot {slot.index}: the drain left {result and result[0]} pending: {drain.stderr()[-300:]!r}")
            leftovers = slot.leftovers()
            if leftovers:
                self.problems.append(f"slot {slot.index}: the spool still holds {leftovers}")

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.double_counted or self.miscounted or self.unexplained or self.problems)

    def report(self, seconds: float) -> str:
        soak = self.soak
        shared = sum(1 for game in soak.games if game.role == 1)
        quits = sum(1 for played in self.played if played.quit_cleanly)
        met = soak.chaos.met
        faults = " ".join(f"{kind}={met[kind]}" for kind in ("503", "500", "429", "drop", "hang", "slow"))
        return (
            f"soak: seed {soak.arguments.seed}, rounds {soak.rounds}, slots {len(soak.slots)},"
            f" processes {len(soak.games)} ({shared} sharing a spool), kills {soak.kills}, clean quits {quits},"
            f" faults {faults} (ambiguous {self.ambiguous_failures}),"
            f" sessions accepted {self.sessions_accepted} due {self.sessions_due} delivered {self.sessions_delivered}"
            f" (stored {len(self.sessions)}),"
            f" events accepted {self.events_accepted} due {self.events_due} delivered {self.events_delivered},"
            f" lost {len(self.lost)}, duplicate sessions {len(self.double_counted)} (resends deduplicated {self.resent}),"
            f" playtime stored {self.seconds_stored:.0f} s of {self.seconds_played:.0f} s played (miscounted {len(self.miscounted)}),"
            f" PlayFab duplicates {self.duplicates} (unexplained {len(self.unexplained)}), time {seconds:.1f} s"
        )


def _stall(played: Played, since: float) -> str:
    if played.game.killed_at is None:
        return ""
    return f"; its frames then woke up to {played.stall(since):.3f} s late"


def _before(kill: Optional[float], when: float) -> str:
    return "before its clean exit" if kill is None else f"{kill - when:.3f} s before the kill"


def _wall(text: str) -> float:
    from datetime import datetime

    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", action="store_true", help=f"the long run: {LONG['rounds']} rounds, at most {LONG['max_seconds'] / 60:.0f} minutes")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {SHORT['rounds']}, {LONG['rounds']} with --long)")
    parser.add_argument("--max-seconds", type=float, help="start no round after this many seconds (default 240, 1620 with --long)")
    parser.add_argument("--seed", type=int, help="for the random choices (default: a new one, printed)")
    parser.add_argument("--slots", type=int, default=3, help="spool folders, each with one or two games (default 3)")
    parser.add_argument("--fault-rate", type=float, default=FAULT_RATE, help=f"the emulator's random faults (default {FAULT_RATE})")
    parser.add_argument("--grace", type=float, default=GRACE, help=f"seconds past flush_interval a kill may lose (default {GRACE})")
    parser.add_argument("--self-check", action="store_true", help="hide one delivered event and lengthen one stored session: the soak must report both and exit 1")
    parser.add_argument("--keep", action="store_true", help="keep the spools and logs (kept anyway when the soak fails)")
    arguments = parser.parse_args(argv)
    defaults = LONG if arguments.long else SHORT
    arguments.rounds = arguments.rounds or defaults["rounds"]
    arguments.max_seconds = arguments.max_seconds or defaults["max_seconds"]
    if arguments.seed is None:
        arguments.seed = random.SystemRandom().randrange(10**6)
    if not sys.platform.startswith("linux"):
        sys.exit("the soak needs Linux: SIGSTOP and SIGKILL, and a monotonic clock shared by processes")
    _support.quiet()
    _support.header("playhooks chaos soak (issue 13)")
    root = tempfile.mkdtemp(prefix="playhooks-soak-")
    began = time.monotonic()
    soak = Soak(arguments, root)
    try:
        soak.run()
    finally:
        for game in soak.games + soak.drains:
            if game.running:
                game.kill()
    check = Check(soak)
    scripted = ", ".join(f"{kind} x{count}" for kind, count in sorted(soak.scripted.items()))
    print(f"faults scripted: {scripted or 'none'}; at random: {arguments.fault_rate:.0%} of requests (503, 500 or a drop)")
    if check.hidden is not None:
        print(f"self-check: event {check.hidden[0]}.{check.hidden[1]} was delivered, and is hidden from the check")
    if check.inflated is not None:
        print(f"self-check: session {check.inflated} is a minute longer to the check than it was stored")
    found = [
        f"{title}: {line}"
        for title, lines in (
            ("lost", check.lost),
            ("double counted", check.double_counted),
            ("playtime miscounted", check.miscounted),
            ("PlayFab duplicates", check.unexplained),
            ("problems", check.problems),
        )
        for line in lines
    ]
    for line in found[:20]:
        print(line)
    if len(found) > 20:
        print(f"... and {len(found) - 20} more (all in report.txt)")
    summary = check.report(time.monotonic() - began)
    print(summary)
    if check.failed or arguments.keep:
        with open(os.path.join(root, "stored.json"), "w", encoding="utf-8") as file:
            json.dump({"during": soak.chaos.stored(), "drain": soak.calm.stored()}, file)
        with open(os.path.join(root, "report.txt"), "w", encoding="utf-8") as file:
            kills = [f"kill: {game.tag} at {game.killed_at}" for game in soak.games if game.killed_at is not None]
            file.write("\n".join(found + kills + [summary]) + "\n")
        print(f"spools, logs, what the emulators stored (stored.json) and every finding (report.txt) kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
