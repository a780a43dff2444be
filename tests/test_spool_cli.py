"""`playhooks spool` on real spools: made by real trackers sending to the emulator over loopback.

Dead letters come from a tracker given a wrong base URL (the emulator answers 404, as a service
does for a mistyped path), pending records from a service answering 503 with an hour's back-off,
quarantined files from a queue file with garbage in it. Nothing sleeps: trackers are flushed.
"""

import json
import os
import subprocess
import sys

import pytest

import playhooks
from playhooks._cli import main
from playhooks._owners import NAMESPACE, beat
from playhooks._spool import Record
from playhooks.testing import ManualClock

from helpers import API_KEY, FAST, ROOT, SECRET_KEY, play, sinks

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the spool's guarantees are tested on POSIX")

HOUR_BACKOFF = playhooks.RetryPolicy(base_delay=3600, max_delay=3600, max_attempts=10_000)
GARBAGE_NAME = "0000000000001-1-0000000000001-0123456789ab.jsonl"  # a queue file's name, with garbage in it


def finished_process_pid():
    """The pid of a process that has exited (and been reaped): a killed retry-dead's."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def wrong_url_sinks(emulator):
    """Sinks whose base URL has a stray path: every request is a 404, every record a dead letter."""
    return [playhooks.PlayCamp(API_KEY, emulator.url + "/wrong"), playhooks.PlayFab("ABCD", SECRET_KEY, emulator.url + "/wrong")]


def open_tracker(made, sinks_, spool, **settings):
    settings.setdefault("retry", FAST)
    tracker = playhooks.Tracker(sinks_, spool_dir=spool, clock=ManualClock(), **settings)
    made.append(tracker)
    return tracker


@pytest.fixture
def trackers():
    made = []
    yield made
    for tracker in made:
        tracker.close(timeout=5)


@pytest.fixture
def dead_spool(emulator, spool, trackers):
    """A spool whose two sessions and two events were all refused (a wrong URL); no tracker open."""
    tracker = open_tracker(trackers, wrong_url_sinks(emulator), spool)
    play(tracker, user="player-1")
    play(tracker, user="player-2")
    assert 0 == tracker.flush(timeout=5)
    tracker.close(timeout=5)
    return spool


def spool_command(capsys, *arguments):
    """``playhooks spool ...`` in this process: (exit status, stdout, stderr)."""
    try:
        status = main(["spool", *arguments])
    except SystemExit as exit:  # argparse's own refusals
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def spool_json(capsys, *arguments):
    status, out, err = spool_command(capsys, *arguments, "--json")
    assert 0 == status, err
    return json.loads(out)


def python_m_playhooks(*arguments, stdin=subprocess.DEVNULL, env=None):
    return subprocess.run(
        [sys.executable, "-m", "playhooks", *arguments], capture_output=True, text=True, timeout=60, stdin=stdin, env=env
    )


def records_in(spool, *parts):
    """{record id: copies} over the files of ``spool/<parts>``."""
    folder = os.path.join(spool, *parts)
    copies = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name), encoding="utf-8") as file:
            for line in file:
                identifier = Record.from_line(line).id
                copies[identifier] = copies.get(identifier, 0) + 1
    return copies


def dead_ids(spool):
    return records_in(spool, "dead")


def received_ids(emulator):
    """Every session and event id the emulator accepted, with how many times."""
    ids = [session["sessionId"] for session in emulator.sessions]
    ids += [event["Body"]["playhooks_event_id"] for event in emulator.events]
    return {identifier: ids.count(identifier) for identifier in ids}


class TestStatus:
    def test_status_shows_pending_dead_and_quarantined_per_service(self, capsys, emulator, dead_spool, trackers):
        """Per service: pending records with the oldest's age and the next try, dead letters by
        reason with a sample id; then the quarantined file and the size on disk."""
        emulator.fail_next(100, 503, route="playcamp")
        os.makedirs(os.path.join(dead_spool, "playfab", "queue"), exist_ok=True)
        with open(os.path.join(dead_spool, "playfab", "queue", GARBAGE_NAME), "w", encoding="utf-8") as file:
            file.write("this is not a spool record at all\n")
        tracker = open_tracker(trackers, sinks(emulator), dead_spool, retry=HOUR_BACKOFF)
        play(tracker, user="player-3", events=())
        tracker.flush(timeout=2)  # the session waits an hour for its retry; the garbage is quarantined
        tracker.close(timeout=5)
        sample = sorted(dead_ids(dead_spool))

        status, out, err = spool_command(capsys, "status", dead_spool)

        assert (0, "") == (status, err)
        assert f"Spool {dead_spool} (" in out
        playcamp, playfab = out.split("\nplaycamp:\n")[1].split("\nplayfab:\n")
        assert "pending: 1 record(s)" in playcamp and "next try: in " in playcamp  # an hour, less jitter
        assert "oldest pending: accepted " in playcamp
        assert "dead letters: 2\n    2 x HTTP 404 no route for POST /wrong/v1/server/playtime/sessions (e.g. " in playcamp
        assert "pending: none" in playfab
        assert "dead letters: 2\n    2 x HTTP 404 no route for POST /wrong/Server/WriteCharacterEvent" in playfab
        assert any(f"(e.g. {identifier})" in out for identifier in sample)
        assert "quarantined: 1 unreadable file(s)" in out and GARBAGE_NAME in out
        assert f"playhooks spool retry-dead {dead_spool}" in out

    def test_status_json_has_the_documented_keys(self, capsys, dead_spool):
        """--json: one object with stable keys; every service named, times and sizes as numbers."""
        report = spool_json(capsys, "status", dead_spool)

        assert {"directory", "size_bytes", "in_use_by", "services", "quarantined", "open_sessions"} == set(report)
        assert (dead_spool, [], ["playcamp", "playfab"]) == (report["directory"], report["in_use_by"], sorted(report["services"]))
        playcamp = report["services"]["playcamp"]
        assert {
            "pending", "being_sent", "oldest_pending_age_seconds", "next_retry_at", "next_retry_in_seconds", "dead", "dead_reasons"
        } == set(playcamp)
        assert (0, 2, None) == (playcamp["pending"], playcamp["dead"], playcamp["next_retry_at"])
        [reason] = playcamp["dead_reasons"]
        assert (2, True) == (reason["records"], reason["sample_id"] in dead_ids(dead_spool))
        assert {"files": 0, "bytes": 0, "names": []} == report["quarantined"]
        assert report["size_bytes"] > 0

    def test_status_names_the_running_game_using_the_folder(self, capsys, emulator, dead_spool, trackers):
        """A live tracker on the folder is named by its pid."""
        open_tracker(trackers, sinks(emulator), dead_spool)

        report = spool_json(capsys, "status", dead_spool)
        status, out, _ = spool_command(capsys, "status", dead_spool)

        assert [os.getpid()] == [user["pid"] for user in report["in_use_by"]]
        assert f"In use by pid {os.getpid()}." in out


class TestRetryDead:
    def test_requeued_records_reach_the_service_exactly_once(self, capsys, emulator, dead_spool, trackers):
        """After the cause is fixed, retry-dead puts every dead letter back; a tracker opened on the
        folder delivers exactly those records, none twice."""
        expected = dead_ids(dead_spool)

        status, out, err = spool_command(capsys, "retry-dead", dead_spool)
        assert (0, "") == (status, err)
        assert "  playcamp: 2 record(s)\n  playfab: 2 record(s)\n" in out
        queued = {**records_in(dead_spool, "playcamp", "queue"), **records_in(dead_spool, "playfab", "queue")}
        assert ({}, expected) == (dead_ids(dead_spool), queued)

        tracker = open_tracker(trackers, sinks(emulator), dead_spool)
        assert 0 == tracker.flush(timeout=5)

        assert expected == received_ids(emulator)
        assert (0, 0) == (emulator.counters["duplicates"], tracker.stats()["refused_by_service"])

    def test_a_running_game_sends_what_is_requeued(self, capsys, emulator, dead_spool, trackers):
        """The folder in use by a live tracker: retry-dead goes ahead through the queue, names the
        process, and the running tracker sends the records."""
        tracker = open_tracker(trackers, sinks(emulator), dead_spool)
        assert 0 == tracker.flush(timeout=5)
        expected = dead_ids(dead_spool)

        status, out, _ = spool_command(capsys, "retry-dead", dead_spool)

        assert 0 == status and f"In use by pid {os.getpid()}, which sends them at its next round" in out
        assert emulator.wait_until(lambda e: len(e.sessions) + len(e.events) >= len(expected), 10)
        assert 0 == tracker.flush(timeout=5)
        assert expected == received_ids(emulator)

    def test_only_the_service_asked_for_is_requeued(self, capsys, dead_spool):
        """--service playfab leaves PlayCamp's dead letters dead."""
        report = spool_json(capsys, "retry-dead", dead_spool, "--service", "playfab")

        assert {"playfab": 2} == report["requeued"]
        still_dead = {name.partition("~")[0] for name in os.listdir(os.path.join(dead_spool, "dead"))}
        assert ({"playcamp"}, 2) == (still_dead, len(dead_ids(dead_spool)))

    def test_retry_dead_json_has_the_documented_keys(self, capsys, dead_spool):
        report = spool_json(capsys, "retry-dead", dead_spool)

        assert {"directory", "requeued", "unreadable_files", "in_use_by"} == set(report)
        assert ({"playcamp": 2, "playfab": 2}, [], []) == (report["requeued"], report["unreadable_files"], report["in_use_by"])

    def test_requeued_records_get_a_fresh_retry_budget(self, capsys, dead_spool):
        """Attempts and the error are cleared, so the retry policy does not give up at once."""
        spool_command(capsys, "retry-dead", dead_spool)

        folder = os.path.join(dead_spool, "playcamp", "queue")
        [name] = os.listdir(folder)
        with open(os.path.join(folder, name), encoding="utf-8") as file:
            records = [Record.from_line(line) for line in file]
        assert [(0, None), (0, None)] == [(record.attempts, record.error) for record in records]

    def test_a_dead_letter_left_taken_by_a_killed_retry_dead_is_requeued(self, capsys, dead_spool):
        """One taken by a process that is gone is requeued by the next; one a live one holds is not."""
        folder = os.path.join(dead_spool, "dead")
        playcamp = next(name for name in os.listdir(folder) if name.startswith("playcamp~"))
        playfab = next(name for name in os.listdir(folder) if name.startswith("playfab~"))
        os.rename(os.path.join(folder, playcamp), os.path.join(folder, f"{playcamp}.{finished_process_pid()}.{NAMESPACE}.0123456789ab"))
        live = f"{os.getppid()}.{NAMESPACE}.0123456789ab"  # a process alive, with a heartbeat, as retry-dead keeps
        beat(os.path.join(dead_spool, "owners", live))
        os.rename(os.path.join(folder, playfab), os.path.join(folder, f"{playfab}.{live}"))

        report = spool_json(capsys, "retry-dead", dead_spool)

        assert {"playcamp": 2, "playfab": 0} == report["requeued"]
        assert 2 == len(dead_ids(dead_spool))

    @pytest.mark.parametrize("dies_at_call", [1, 2, 3, 4, 5, 6])
    def test_killed_midway_no_record_is_lost_or_doubled(self, capsys, emulator, dead_spool, trackers, dies_at_call):
        """retry-dead killed at any of its renames (each dead letter takes three): every record is
        in exactly one file; the next retry-dead finishes, and each is delivered once."""
        expected = dead_ids(dead_spool)
        dying = (
            "import os, sys\n"
            "calls = [0]\n"
            "def dies(real):\n"
            "    def call(*arguments, **options):\n"
            "        calls[0] += 1\n"
            f"        if calls[0] == {dies_at_call}:\n"
            "            os._exit(9)  # as SIGKILL: no finally, no cleanup\n"
            "        return real(*arguments, **options)\n"
            "    return call\n"
            "os.rename, os.replace = dies(os.rename), dies(os.replace)\n"
            "from playhooks._cli import main\n"
            f"main(['spool', 'retry-dead', {dead_spool!r}])\n"
        )
        killed = subprocess.run([sys.executable, "-c", dying], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert 9 == killed.returncode, killed.stderr

        everywhere = [dead_ids(dead_spool), records_in(dead_spool, "playcamp", "queue"), records_in(dead_spool, "playfab", "queue")]
        copies = {identifier: sum(found.get(identifier, 0) for found in everywhere) for identifier in expected}
        assert {identifier: 1 for identifier in expected} == copies

        status, _, err = spool_command(capsys, "retry-dead", dead_spool)
        tracker = open_tracker(trackers, sinks(emulator), dead_spool)
        assert (0, 0) == (status, tracker.flush(timeout=5)), err
        assert expected == received_ids(emulator)


class TestPurge:
    @pytest.fixture
    def full_spool(self, emulator, dead_spool, trackers):
        """Dead letters of both services, and one PlayCamp session waiting an hour for its retry."""
        emulator.fail_next(100, 503, route="playcamp")
        tracker = open_tracker(trackers, sinks(emulator), dead_spool, retry=HOUR_BACKOFF)
        play(tracker, user="player-3", events=())
        tracker.flush(timeout=2)
        tracker.close(timeout=5)
        return dead_spool

    def test_off_a_terminal_purge_needs_yes_and_deletes_nothing(self, full_spool):
        """Without --yes and no terminal to ask on: what it would delete, then a refusal, exit 2."""
        done = python_m_playhooks("spool", "purge", full_spool)

        assert 2 == done.returncode
        assert "  playcamp: 1 pending record(s), 2 dead letter(s)\n  playfab: 2 dead letter(s)\n" in done.stdout
        assert "playhooks spool purge: --yes: required to delete when not run on a terminal (nothing was deleted)\n" == done.stderr
        assert (4, 1) == (len(dead_ids(full_spool)), len(records_in(full_spool, "playcamp", "queue")))

    def test_yes_deletes_what_it_listed(self, capsys, full_spool):
        status, out, _ = spool_command(capsys, "purge", full_spool, "--yes")

        assert 0 == status
        assert "Deleted:\n  playcamp: 1 pending record(s), 2 dead letter(s)\n  playfab: 2 dead letter(s)\n" in out
        assert ({}, {}) == (dead_ids(full_spool), records_in(full_spool, "playcamp", "queue"))

    def test_dead_only_and_service_narrow_it(self, capsys, full_spool):
        """--dead-only --service playfab: PlayFab's dead letters alone."""
        report = spool_json(capsys, "purge", full_spool, "--dead-only", "--service", "playfab", "--yes")

        assert {"pending": {}, "dead": {"playfab": 2}, "quarantined_files": 0, "checkpoints": 0} == report["deleted"]
        assert (2, 1) == (len(dead_ids(full_spool)), len(records_in(full_spool, "playcamp", "queue")))

    def test_purge_json_has_the_documented_keys(self, capsys, full_spool):
        """Refused off a terminal, --json still says what it would delete, and that it deleted nothing."""
        status, out, err = spool_command(capsys, "purge", full_spool, "--json")

        report = json.loads(out)
        assert 2 == status and "--yes" in err
        assert {"directory", "in_use_by", "will_delete", "deleted", "left_being_sent"} == set(report)
        planned = {"pending": {"playcamp": 1}, "dead": {"playcamp": 2, "playfab": 2}, "quarantined_files": 0, "checkpoints": 0}
        assert planned == report["will_delete"]
        assert (None, 0) == (report["deleted"], report["left_being_sent"])

    def test_a_full_purge_takes_the_quarantined_files_too(self, capsys, emulator, dead_spool, trackers):
        """With no --service, the unreadable files in quarantine/ go with the rest."""
        os.makedirs(os.path.join(dead_spool, "playfab", "queue"), exist_ok=True)
        with open(os.path.join(dead_spool, "playfab", "queue", GARBAGE_NAME), "w", encoding="utf-8") as file:
            file.write("this is not a spool record at all\n")
        tracker = open_tracker(trackers, sinks(emulator), dead_spool)
        tracker.flush(timeout=5)
        tracker.close(timeout=5)
        assert 1 == tracker.stats()["quarantined_files"]

        status, out, _ = spool_command(capsys, "purge", dead_spool, "--yes")

        assert 0 == status and "  quarantine: 1 unreadable file(s)\n" in out.split("Deleted:")[1]
        assert [] == os.listdir(os.path.join(dead_spool, "quarantine"))

    def test_what_a_running_game_is_sending_is_left_to_it(self, capsys, emulator, dead_spool, trackers):
        """A live tracker's claim (its request hanging) is not deleted, and the purge says so; what
        waits in the queue is."""
        emulator.hang_next(1, route="playcamp", seconds=30)
        tracker = open_tracker(trackers, sinks(emulator), dead_spool, read_timeout=30)
        play(tracker, user="player-3", events=())
        tracker.flush(timeout=0.2)
        assert emulator.wait_until(lambda e: e.in_flight.get("playcamp") == 1, 10)

        report = spool_json(capsys, "purge", dead_spool, "--yes")

        assert (1, [os.getpid()]) == (report["left_being_sent"], [user["pid"] for user in report["in_use_by"]])
        assert {"pending": {}, "dead": {"playcamp": 2, "playfab": 2}, "quarantined_files": 0, "checkpoints": 0} == report["deleted"]
        assert 1 == len(records_in(dead_spool, "playcamp", "claimed"))

    @pytest.mark.parametrize("answer, status, left", [("yes", 0, 0), ("no", 1, 4)])
    def test_on_a_terminal_it_asks(self, full_spool, answer, status, left):
        """On a TTY it asks yes/no, and deletes only on yes."""
        import pty

        controller, terminal = pty.openpty()
        try:
            os.write(controller, f"{answer}\n".encode())
            done = python_m_playhooks("spool", "purge", full_spool, stdin=terminal)
        finally:
            os.close(controller)
            os.close(terminal)

        assert (status, left) == (done.returncode, len(dead_ids(full_spool)))
        assert "Delete these? [yes/no] " in done.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the user's data folder is XDG_DATA_HOME's on Linux")
class TestFindingSpools:
    @pytest.fixture
    def data_home(self, tmp_path, monkeypatch):
        """The user's data folder (and the temporary fallback) in tmp_path, for this process and its children."""
        import tempfile

        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
        os.makedirs(tmp_path / "tmp")
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
        return tmp_path / "data"

    @pytest.fixture
    def game(self, tmp_path, data_home, monkeypatch, emulator, trackers):
        """A game's script that ran a tracker with the default spool folder and left a dead letter."""
        script = tmp_path / "games" / "lighthouse.py"
        script.parent.mkdir()
        script.write_text("# a game\n")
        monkeypatch.setattr(sys, "argv", [str(script)])
        tracker = playhooks.Tracker(wrong_url_sinks(emulator), clock=ManualClock(), retry=FAST)
        trackers.append(tracker)
        play(tracker, events=())
        assert 0 == tracker.flush(timeout=5)
        tracker.close(timeout=5)
        return script, tracker.stats()["spool_folder"]

    def test_program_resolves_the_folder_the_tracker_used(self, capsys, game):
        """--program takes the script's path, or its program name, and finds the same folder."""
        script, folder = game

        by_path = spool_json(capsys, "status", "--program", str(script))
        by_name = spool_json(capsys, "status", "--program", "lighthouse")

        assert (folder, folder) == (by_path["directory"], by_name["directory"])
        assert folder == playhooks.Settings().spool_folder()  # sys.argv[0] is the script: the tracker's own rule
        assert 1 == by_name["services"]["playcamp"]["dead"]

    def test_without_a_folder_status_lists_the_spools_found(self, capsys, game, data_home):
        _, folder = game

        status, out, _ = spool_command(capsys, "status")
        report = spool_json(capsys, "status")

        assert 0 == status
        assert "lighthouse" in out and folder in out and "playhooks spool status --program lighthouse" in out
        assert [{"directory": folder, "program": "lighthouse", "pending": 0, "dead": 1}] == [
            {key: value for key, value in spool.items() if key != "size_bytes"} for spool in report["spools"]
        ]
        assert str(data_home / "playhooks") == report["roots"][0]

    def test_two_programs_of_one_name_are_told_apart_by_path(self, capsys, game, data_home):
        _, folder = game
        other = data_home / "playhooks" / "lighthouse-0123456789"
        for part in ("dead", "owners"):
            (other / part).mkdir(parents=True)

        status, _, err = spool_command(capsys, "status", "--program", "lighthouse")

        assert 2 == status
        assert err.startswith("playhooks spool status: --program: several programs named 'lighthouse' have spools (")
        assert folder in err and str(other) in err

    def test_no_spool_found(self, capsys, data_home):
        status, out, _ = spool_command(capsys, "status")
        missing, _, err = spool_command(capsys, "status", "--program", "lighthouse")

        assert (0, 2) == (status, missing)
        assert out.startswith(f"No spools in {data_home / 'playhooks'}")
        assert err.startswith("playhooks spool status: --program: no spool of a program 'lighthouse' in ")


class TestErrors:
    def test_a_missing_folder_is_one_line_and_status_2(self, tmp_path):
        done = python_m_playhooks("spool", "status", str(tmp_path / "nowhere"))

        expected = f"playhooks spool status: DIR: {tmp_path / 'nowhere'} does not exist\n"
        assert (2, "", expected) == (done.returncode, done.stdout, done.stderr)

    def test_a_folder_that_is_not_a_spool(self, capsys, tmp_path):
        status, _, err = spool_command(capsys, "retry-dead", str(tmp_path))

        assert 2 == status
        assert (
            f"playhooks spool retry-dead: DIR: {tmp_path} is not a playhooks spool (a spool holds the folders dead and owners)\n"
        ) == err

    def test_a_file_is_not_a_folder(self, capsys, tmp_path):
        path = tmp_path / "file"
        path.write_text("")

        assert (2, "", f"playhooks spool purge: DIR: {path} is not a folder\n") == spool_command(capsys, "purge", str(path), "--yes")

    def test_a_bad_service_names_the_ones_there_are(self, capsys, dead_spool):
        status, _, err = spool_command(capsys, "retry-dead", dead_spool, "--service", "playfeb")

        rule = "must be one of this spool's services: playcamp, playfab (got 'playfeb')"
        assert (2, f"playhooks spool retry-dead: --service: {rule}\n") == (status, err)
        assert 4 == len(dead_ids(dead_spool))

    def test_retry_dead_needs_a_folder(self, capsys):
        status, _, err = spool_command(capsys, "retry-dead")

        assert 2 == status and err.startswith("playhooks spool retry-dead: DIR: required, or --program NAME")

    def test_dir_and_program_together(self, capsys, dead_spool):
        status, _, err = spool_command(capsys, "status", dead_spool, "--program", "lighthouse")

        assert (2, "playhooks spool status: DIR and --program: give one of them, not both\n") == (status, err)

    @pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any folder")
    def test_an_unreadable_folder_is_status_1(self, capsys, dead_spool):
        os.chmod(dead_spool, 0)
        try:
            status, _, err = spool_command(capsys, "status", dead_spool)
        finally:
            os.chmod(dead_spool, 0o700)

        assert 1 == status and "DIR: " in err and "cannot be read" in err
