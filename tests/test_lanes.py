"""The sender's lanes (issue 9): one per service, each with up to ``max_in_flight`` requests at once.

Real HTTP over loopback to the emulator. Tests synchronise on the emulator (``wait_until``), on
``flush(timeout)`` and on ``wait_for``, never on a sleep; the emulator's ``delay_next`` makes
requests overlap, so concurrency can be measured (``max_in_flight``) rather than hoped for.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import Any, Dict, List

import pytest

import playhooks
from playhooks.emulator import Emulator
from playhooks.testing import ManualClock

from helpers import FAST, PLAYER, event_numbers, play, sinks, wait_for

PLAYFAB_EVENT = "/Server/WriteCharacterEvent"
EVENT_ID = "playhooks_event_id"
TESTS = os.path.dirname(os.path.abspath(__file__))
OTHER = {"playcamp": "playfab", "playfab": "playcamp"}
SERVICE_PATHS = {
    "playcamp": ("/v1/server/playtime/sessions", "/v1/server/playtime/sessions/bulk"),
    "playfab": (PLAYFAB_EVENT,),
}


class AnswerLog(Emulator):
    """The emulator, also noting each answer's path, status and time (``answers``): the request log
    has arrival times only, and a test of ``Retry-After`` needs the moment the 429 went out."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.answers: List[Dict[str, Any]] = []

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        path = environ.get("PATH_INFO", "")

        def answer(status: str, headers: Any, *exc_info: Any) -> Any:
            self.answers.append({"path": path, "status": int(status.split()[0]), "time": time.time()})
            return start_response(status, headers, *exc_info)

        return super().__call__(environ, answer)


def send_events(tracker, count, first=0):
    """``count`` character events numbered from ``first`` (``body.n``)."""
    for number in range(first, first + count):
        tracker.on_character_event("tick", body={"n": number}, **PLAYER)


def send_records(tracker, service, count):
    """``count`` records for ``service``: events, or sessions of users ``u0``, ``u1``..."""
    if service == "playfab":
        send_events(tracker, count)
    else:
        for number in range(count):
            play(tracker, user=f"u{number}", events=())


def delivered(emulator, service):
    """What ``service`` stored, sorted: event numbers, or session user ids."""
    if service == "playfab":
        return sorted(event_numbers(emulator))
    return sorted(session["userId"] for session in emulator.sessions)


def expected(service, count):
    return list(range(count)) if service == "playfab" else sorted(f"u{number}" for number in range(count))


def claimed_files(spool):
    """Files in any destination's ``claimed/`` folder: records a tracker holds as in flight."""
    found = []
    for destination in os.listdir(spool) if os.path.isdir(spool) else ():
        folder = os.path.join(spool, destination, "claimed")
        if os.path.isdir(folder):
            found += os.listdir(folder)
    return found


class TestOneServiceNeverDelaysTheOther:
    @pytest.mark.parametrize("stuck", ["playcamp", "playfab"])
    def test_a_hung_service_does_not_delay_the_other(self, make_tracker, emulator, stuck):
        """While one service's request hangs, the other service's records all go out in a short flush."""
        free = OTHER[stuck]
        emulator.hang_next(1, route=stuck, seconds=30)
        tracker = make_tracker(read_timeout=30)
        send_records(tracker, stuck, 1)
        assert emulator.wait_until(lambda e: e.in_flight[stuck] == 1, timeout=10)

        send_records(tracker, free, 20)
        remaining = tracker.flush(timeout=2)
        still_hung = emulator.in_flight[stuck]
        tracker.close(timeout=0.5)  # the hung request is left to its own thread

        assert (1, 1) == (remaining, still_hung)
        assert expected(free, 20) == delivered(emulator, free)
        assert [] == delivered(emulator, stuck)

    def test_a_hung_request_does_not_hold_back_its_own_lane(self, make_tracker, emulator):
        """A PlayFab request that hangs is left to its read timeout: the lane's other events go out
        on other connections, though the lane was sending one at a time."""
        emulator.hang_next(1, route="playfab", seconds=30)
        tracker = make_tracker(read_timeout=30)
        send_events(tracker, 1)
        assert emulator.wait_until(lambda e: e.in_flight["playfab"] == 1, timeout=10)

        send_events(tracker, 20, first=1)
        remaining = tracker.flush(timeout=5)
        still_hung = emulator.in_flight["playfab"]
        tracker.close(timeout=0.5)

        assert (1, 1) == (remaining, still_hung)
        assert list(range(1, 21)) == sorted(event_numbers(emulator))

    @pytest.mark.parametrize("stuck", ["playcamp", "playfab"])
    def test_a_rate_limited_service_does_not_delay_the_other(self, make_tracker, emulator, stuck):
        """A 429 with Retry-After: 60 pauses that service's lane only; the other's records all go out."""
        free = OTHER[stuck]
        emulator.fail_next(1, 429, headers={"Retry-After": "60"}, route=stuck)
        tracker = make_tracker()
        send_records(tracker, stuck, 1)
        assert emulator.wait_until(lambda e: e.counters["faults"] == 1, timeout=10)  # the 429 was served

        send_records(tracker, free, 20)
        remaining = tracker.flush(timeout=5)
        tracker.close(timeout=0.5)
        stuck_requests = [request for request in emulator.requests if request["path"] in SERVICE_PATHS[stuck]]

        assert 1 == remaining
        assert expected(free, 20) == delivered(emulator, free)
        assert [] == delivered(emulator, stuck)
        assert 1 == len(stuck_requests)  # the 429's: no retry before the 60 s


class TestRequestsInFlight:
    @pytest.mark.parametrize("limit, count", [(1, 20), (3, 60), (8, 150)])
    def test_playfab_requests_in_flight_reach_the_limit_and_never_pass_it(self, make_tracker, emulator, limit, count):
        """With each request held 50 ms, at most ``max_in_flight`` events are in flight at once, and that many are."""
        emulator.delay_next(count, seconds=0.05, route="playfab")
        tracker = make_tracker(max_in_flight=limit)
        send_events(tracker, count)

        remaining = tracker.flush(timeout=15)
        most = emulator.max_in_flight["playfab"]

        assert most <= limit
        assert limit == most  # concurrency is real, not a lane sending one request at a time
        assert (0, list(range(count))) == (remaining, sorted(event_numbers(emulator)))

    @pytest.mark.parametrize("limit", [1, 2])
    def test_playcamp_bulk_requests_in_flight_never_pass_the_limit(self, make_tracker, emulator, limit):
        """450 sessions go out in bulk requests of up to 100 (five or more), at most ``max_in_flight`` at once."""
        emulator.delay_next(100, seconds=0.1, route="playcamp")
        tracker = make_tracker(max_in_flight=limit)
        send_records(tracker, "playcamp", 450)

        remaining = tracker.flush(timeout=15)
        most = emulator.max_in_flight["playcamp"]
        paths = [request["path"] for request in emulator.requests]

        assert most <= limit
        assert 5 <= len(paths) and "/v1/server/playtime/sessions/bulk" in paths
        assert (0, 450, 0) == (remaining, len(emulator.sessions), emulator.counters["duplicates"])

    def test_flush_and_stats_report_nothing_pending_after_delivery(self, make_tracker, emulator):
        """With eight requests in flight, flush() returns 0 once all is delivered, and stats() agrees."""
        emulator.delay_next(1000, seconds=0.02)
        tracker = make_tracker(max_in_flight=8)
        for number in range(10):
            play(tracker, user=f"u{number}", events=("level_completed", "item_found"))
        send_events(tracker, 30)

        remaining = tracker.flush(timeout=15)
        stats = tracker.stats()

        assert 0 == remaining
        assert {"pending": 0, "confirmed_by_service": 60, "written_to_spool": 60} == {key: stats[key] for key in ("pending", "confirmed_by_service", "written_to_spool")}
        assert (10, 50) == (len(emulator.sessions), len(emulator.events))


class TestRetryAfter:
    def test_a_429_stops_the_whole_lane_until_its_retry_after(self, spool):
        """After a 429 with Retry-After: 1, no new PlayFab request starts for a second: at most the
        other N-1 (sent before the lane read the 429) arrive meanwhile; then everything is delivered."""
        limit, count = 4, 60
        with AnswerLog() as emulator:
            emulator.fail_next(1, 429, headers={"Retry-After": "1"}, route="playfab")
            emulator.delay_next(10_000, seconds=0.05, route="playfab")  # without a pause, 60 take ~0.75 s
            tracker = playhooks.Tracker(sinks(emulator), spool_dir=spool, retry=FAST, clock=ManualClock(), max_in_flight=limit)
            try:
                send_events(tracker, count)
                remaining = tracker.flush(timeout=15)
            finally:
                tracker.close(timeout=5)
            [throttled] = [answer["time"] for answer in emulator.answers if answer["status"] == 429]
            arrivals = [request["time"] for request in emulator.requests if request["path"] == PLAYFAB_EVENT]
            numbers = sorted(event_numbers(emulator))

        during_pause = [arrival for arrival in arrivals if throttled < arrival < throttled + 1.0]
        assert len(during_pause) <= limit - 1, f"{len(during_pause)} requests arrived during the Retry-After pause"
        assert (0, list(range(count)), count + 1) == (remaining, numbers, len(arrivals))


class TestExit:
    def test_close_is_bounded_with_requests_hanging(self, make_tracker, emulator, spool):
        """close(timeout=1) returns within about a second while requests hang (their read timeout is
        30 s), with every undelivered record pending; once the hung requests end, the next tracker
        delivers every record.

        A record may reach the service twice only if its request was in flight at the close and the
        service stored it though its answer never came back (an ambiguous failure): so at most
        ``max_in_flight`` duplicates. (A hang stores nothing, so here none are expected.)
        """
        limit, count, before_hang = 4, 60, 40
        emulator.delay_next(before_hang, seconds=0.05, route="playfab")  # requests overlap, then...
        emulator.hang_next(10**6, route="playfab", seconds=30)  # ...every later one hangs
        first = make_tracker(max_in_flight=limit, read_timeout=30)
        send_events(first, count)
        assert emulator.wait_until(lambda e: len(e.events) == before_hang and e.in_flight["playfab"] >= 1, timeout=15)

        started = time.monotonic()
        pending = first.close(timeout=1)
        took = time.monotonic() - started
        hanging = emulator.in_flight["playfab"]

        assert took < 1 + 1.5  # a bound, with slack for a loaded machine: not a speed
        assert count - before_hang == pending
        assert 1 <= hanging <= limit

        numbers = event_numbers(emulator)
        emulator.stop()  # the hung requests end: their connections close unanswered
        assert wait_for(lambda: not claimed_files(spool), timeout=15)  # the first tracker settled them
        with Emulator() as after:
            second = playhooks.Tracker(sinks(after), spool_dir=spool, retry=FAST, clock=ManualClock())
            remaining = second.flush(timeout=10)
            second.close(timeout=5)
            numbers = Counter(numbers + event_numbers(after))

        assert 0 == remaining
        assert set(range(count)) == set(numbers)
        assert sum(numbers.values()) - count <= limit

    def test_requests_answered_after_close_are_not_sent_again(self, make_tracker, emulator, spool):
        """Requests still in flight when close() returns are answered later and settled by their own
        tracker; a tracker started meanwhile on the same spool sends every other record, once."""
        count = 20
        emulator.delay_next(10**6, seconds=2, route="playfab")
        first = make_tracker(max_in_flight=4)
        send_events(first, count)
        assert emulator.wait_until(lambda e: e.in_flight["playfab"] >= 1, timeout=10)

        pending = first.close(timeout=0.5)
        in_flight = emulator.in_flight["playfab"]
        numbers = event_numbers(emulator)
        emulator.reset()  # later requests are answered at once; those held are answered in 2 s
        second = make_tracker()  # while the first tracker's requests are still held
        second.flush(timeout=5)
        assert wait_for(lambda: len(numbers) + len(emulator.events) >= count and not claimed_files(spool), timeout=15)
        second.flush(timeout=5)

        assert (count, True) == (pending, in_flight >= 1)
        assert list(range(count)) == sorted(numbers + event_numbers(emulator))

    def test_a_tracker_started_during_another_s_requests_reports_nothing_pending_once_delivered(
        self, make_tracker, emulator, spool
    ):
        """A tracker started while another's request is in flight: once that request is delivered and
        settled, the new tracker's flush() and stats() say nothing is pending."""
        emulator.delay_next(1, seconds=1, route="playfab")
        first = make_tracker()
        first.on_character_event("tick", body={"n": 0}, **PLAYER)
        assert emulator.wait_until(lambda e: e.in_flight["playfab"] == 1, timeout=10)
        first.close(timeout=0.2)
        second = make_tracker()  # while the first tracker's request is in flight
        assert wait_for(lambda: len(emulator.events) == 1 and not claimed_files(spool), timeout=15)

        remaining = second.flush(timeout=5)

        assert (0, 0) == (remaining, second.stats()["pending"])


DRAINER = textwrap.dedent(
    """
    import json, sys, types
    sys.path.insert(0, sys.argv[3])
    import playhooks
    from helpers import FAST, sinks
    url, spool = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start draining at once
    tracker = playhooks.Tracker(sinks(types.SimpleNamespace(url=url)), spool_dir=spool, retry=FAST, max_in_flight=8)
    pending = tracker.flush(timeout=20)
    sent = tracker.stats()["confirmed_by_service"]
    tracker.close(timeout=5)
    print(json.dumps({"pending": pending, "sent": sent}), flush=True)
    """
)


class TestNoRecordSentTwice:
    def test_one_tracker_sends_each_record_once(self, make_tracker, emulator):
        """Two lanes, eight requests each, with failures on the way: every event id and sessionId arrives once."""
        emulator.fail_next(3, 503, route="playfab")
        emulator.drop_next(2, route="playfab")
        emulator.fail_next(2, 503, route="playcamp")
        emulator.delay_next(10_000, seconds=0.01)
        tracker = make_tracker(max_in_flight=8)
        for number in range(50):
            play(tracker, user=f"u{number}", events=("level_completed", "item_found"))
        send_events(tracker, 100)

        remaining = tracker.flush(timeout=20)
        ids = Counter(event["Body"][EVENT_ID] for event in emulator.events)

        assert 0 == remaining
        assert (200, {1}) == (len(ids), set(ids.values()))
        assert (50, 0) == (len(emulator.sessions), emulator.counters["duplicates"])

    def test_two_processes_draining_one_backlog_send_each_record_once(self, make_tracker, emulator, spool):
        """A backlog spooled while both services failed, drained by two processes started together
        (eight requests in flight each): every event id once, every sessionId once."""
        emulator.fail_next(100_000, 503)
        filler = make_tracker(durability="sync")  # a spool file per record, so both processes find work
        send_events(filler, 300)
        for number in range(40):
            play(filler, user=f"u{number}", events=())
        assert 340 == filler.close(timeout=2)
        assert wait_for(lambda: not claimed_files(spool), timeout=15)
        emulator.reset()
        emulator.delay_next(100_000, seconds=0.03)  # each process alone would take about a second

        processes = [
            subprocess.Popen(
                [sys.executable, "-c", DRAINER, emulator.url, spool, TESTS],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            assert ["ready", "ready"] == [process.stdout.readline().strip() for process in processes]
            for process in processes:
                process.stdin.write("go\n")
                process.stdin.flush()
            outputs = [process.communicate(timeout=60)[0] for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()

        results = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
        ids = Counter(event["Body"][EVENT_ID] for event in emulator.events)
        assert [0, 0] == [process.returncode for process in processes]
        assert (300, {1}) == (len(ids), set(ids.values()))
        assert (40, 0) == (len(emulator.sessions), emulator.counters["duplicates"])
        assert 340 == sum(result["sent"] for result in results)
        assert all(result["sent"] > 0 for result in results), f"one process sent nothing: {results}"
