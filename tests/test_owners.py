"""Who owns a spool's claims and checkpoints: never a live owner in another pid namespace.

Two containers sharing a spool volume both run their game as pid 1. The test runs two real
processes in pid namespaces of their own (``unshare``, root only, as CI runs).
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from playhooks import _owners

from helpers import API_KEY, ROOT, wait_for

GAME = textwrap.dedent(
    """
    import sys
    import playhooks
    from playhooks.testing import ManualClock

    url, spool, role = sys.argv[1], sys.argv[2], sys.argv[3]
    clock = ManualClock()
    tracker = playhooks.Tracker([playhooks.PlayCamp(API_KEY, url)], spool_dir=spool, clock=clock)
    if role == "first":
        session = tracker.on_session_start("player-1")
        clock.advance(7)
        tracker.flush(timeout=5)                 # checkpointed, at 7 s of play
        print("pid", __import__("os").getpid(), flush=True)
        sys.stdin.readline()                     # the second container starts meanwhile
        clock.advance(13)
        tracker.on_session_end(session)          # 20 s of play in all
    else:
        print("pid", __import__("os").getpid(), flush=True)
    print("pending", tracker.close(timeout=10), flush=True)
    """
)


def in_own_pid_namespace(*arguments):
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare as root for pid namespaces")
    command = [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", f"API_KEY = {API_KEY!r}\n" + GAME, *arguments]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)


class TestContainersSharingASpool:
    def test_a_live_owner_in_another_namespace_with_the_same_pid_is_never_taken_over(self, emulator, spool):
        """Both games are pid 1. The second starts while the first plays: it must not "recover"
        the first's live session, which is sent once, whole, when the first ends it."""
        with in_own_pid_namespace(emulator.url, spool, "first") as first:
            try:
                assert "pid 1" == first.stdout.readline().strip()
                with in_own_pid_namespace(emulator.url, spool, "second") as second:
                    output, _ = second.communicate(timeout=60)
                assert ["pid 1", "pending 0"] == output.split("\n")[:2]
                first.stdin.write("\n")
                first.stdin.flush()
                assert "pending 0" == first.stdout.readline().strip()
            finally:
                first.kill()

        [session] = emulator.sessions
        assert 20 == session["durationSeconds"]
        assert "playhooks_recovered" not in session.get("metadata", {})


class TestOwnerIds:
    def test_an_owner_names_its_namespace(self):
        """pid, namespace, random: unique per tracker start, and which pids it can be checked against."""
        owner = _owners.new_owner()
        _owners.retire_owner(owner)
        pid, namespace, token = owner.split(".")
        assert (str(os.getpid()), _owners.NAMESPACE, 12) == (pid, namespace, len(token))

    @pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="zombies are read from Linux's /proc")
    def test_a_killed_process_not_yet_reaped_is_dead(self):
        """A game killed with its launcher stays listed as a zombie until someone reaps it: its
        claims and its open session must not wait for that."""
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        owner = f"{child.pid}.{_owners.NAMESPACE}.0123456789ab"
        try:
            assert wait_for(lambda: _owners._is_zombie(child.pid), 10)  # ended; this test has not reaped it
            assert not _owners.owner_is_alive(owner, heartbeat_age=0.0)
        finally:
            child.wait()

    def test_another_namespace_is_alive_while_its_heartbeat_is_fresh(self):
        """Its pid means nothing here: only the heartbeat decides."""
        owner = f"{os.getpid()}.0000ffff.0123456789ab"
        assert _owners.owner_is_alive(owner, heartbeat_age=1.0)
        assert not _owners.owner_is_alive(owner, heartbeat_age=_owners.STALE_OWNER_SECONDS + 1)

    def test_a_heartbeat_ages_by_the_monotonic_clock_whatever_the_wall_clock(self, tmp_path):
        """A heartbeat written now is fresh even if the file's time says a year ago."""
        path = str(tmp_path / "owner")
        _owners.beat(path)
        if not _owners.BOOT_ID:
            pytest.skip("this system does not say its boot id")
        assert _owners.heartbeat_age(path, modified=0.0) < 5
