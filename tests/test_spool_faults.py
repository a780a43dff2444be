"""The spool on a broken disk: folders that cannot be made, a disk that fills up or turns read-only,
a folder deleted or replaced under it, absurd files, and bounds kept as records are written.

Full and read-only disks are real: a small tmpfs mounted for the test (root only, as CI runs).
"""

import os
import shutil
import subprocess
import tempfile

import pytest

import playhooks

from helpers import FAST, PLAYER, event_numbers, wait_for

DELIVERY = 30  # seconds a recovered disk's backlog may take to reach the emulator, on a slow machine


class SmallDisk:
    """A real tmpfs of a few hundred KiB: fill it, free it, make it read-only or writable again."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", path)
        self._filler = os.path.join(path, "filler")

    def _mount(self, *arguments):
        done = subprocess.run(["mount", *arguments], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"needs a tmpfs mount (root): {done.stderr.strip()}")

    def fill(self):
        with open(self._filler, "ab", buffering=0) as file:
            try:
                while True:
                    file.write(b"x" * 4096)
            except OSError:
                pass  # full

    def free(self):
        os.remove(self._filler)

    def read_only(self):
        self._mount("-o", "remount,ro", self.path)

    def writable(self):
        self._mount("-o", "remount,rw", self.path)

    def unmount(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True)


@pytest.fixture
def disk(tmp_path):
    disk = SmallDisk(str(tmp_path / "disk"))
    yield disk
    disk.unmount()


def send_events(tracker, numbers):
    for number in numbers:
        tracker.on_character_event("level_completed", body={"n": number}, **PLAYER)


def backlog(make_tracker, emulator, spool, count):
    """A tracker whose services are down, with ``count`` events waiting in its spool."""
    emulator.fail_next(100_000, 503)
    tracker = make_tracker(spool_dir=spool)
    send_events(tracker, range(count))
    tracker.flush(timeout=5)
    return tracker


def files_in(folder):
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]


class TestAnUnusableFolderAtStart:
    def test_a_folder_that_cannot_be_made_falls_back_to_a_private_temporary_one(self, tmp_path, emulator, make_tracker, caplog):
        """A spool_dir under a file cannot exist: the tracker starts anyway, says so once, and
        delivers through a folder of the same name in a private temporary folder."""
        (tmp_path / "a-file").write_text("")
        wanted = str(tmp_path / "a-file" / "spool")

        tracker = make_tracker(spool_dir=wanted)
        send_events(tracker, range(3))

        assert 0 == tracker.flush(timeout=10)
        stats = tracker.stats()
        assert [0, 1, 2] == sorted(event_numbers(emulator))
        assert stats["spool_folder"].startswith(os.path.join(tempfile.gettempdir(), "playhooks-"))
        assert (None, {}) == (stats["spool_problem"], stats["dropped"])
        assert 1 == sum("instead of" in record.getMessage() for record in caplog.records)

    def test_a_read_only_home_and_temporary_folder_mean_memory_with_the_same_retries(
        self, disk, emulator, make_tracker, monkeypatch
    ):
        """With no folder writable, payloads are held in memory, retried through an outage, and delivered."""
        disk.read_only()
        monkeypatch.setattr(tempfile, "tempdir", disk.path)  # the system's temporary folder, read-only too
        emulator.fail_next(5, 503)

        tracker = make_tracker(spool_dir=os.path.join(disk.path, "spool"))
        send_events(tracker, range(10))

        assert 0 == tracker.flush(timeout=DELIVERY)
        assert list(range(10)) == sorted(event_numbers(emulator))
        assert "Read-only file system" in tracker.stats()["spool_problem"]
        assert tracker.stats()["retried"] > 0

    def test_from_env_starts_with_an_unusable_spool_dir(self, tmp_path, emulator):
        """PLAYHOOKS_SPOOL_DIR naming a path that cannot be a folder is the player's machine: no error."""
        (tmp_path / "a-file").write_text("")
        environ = {
            "PLAYHOOKS_PLAYFAB_TITLE_ID": "ABCD",
            "PLAYHOOKS_PLAYFAB_SECRET_KEY": "secret",
            "PLAYHOOKS_PLAYFAB_URL": emulator.url,
            "PLAYHOOKS_SPOOL_DIR": str(tmp_path / "a-file" / "spool"),
        }

        with playhooks.Tracker.from_env(environ=environ, retry=FAST) as tracker:
            send_events(tracker, [7])

            assert (0, [7]) == (tracker.flush(timeout=10), event_numbers(emulator))


class TestDiskFaultsWhileRunning:
    def test_a_full_disk_holds_new_payloads_and_writes_them_when_space_returns(self, disk, emulator, make_tracker):
        """Accepted while the disk is full: held, not dropped, no half-written file left; written
        to the spool and delivered once space returns, in the same process."""
        spool = os.path.join(disk.path, "spool")
        tracker = backlog(make_tracker, emulator, spool, 5)  # the service is down too: all waits in the spool

        disk.fill()
        send_events(tracker, range(5, 10))
        tracker.flush(timeout=5)
        problem = tracker.stats()["spool_problem"]
        disk.free()
        emulator.reset()

        assert "No space left on device" in problem
        assert 0 == tracker.flush(timeout=DELIVERY)
        assert list(range(10)) == sorted(event_numbers(emulator))
        assert wait_for(lambda: tracker.stats()["spool_problem"] is None, timeout=5)  # the disk is in use again
        assert ({}, []) == (tracker.stats()["dropped"], files_in(os.path.join(spool, "tmp")))

    def test_a_disk_turned_read_only_mid_delivery_strands_nothing(self, disk, emulator, make_tracker):
        """Claims made before the disk turned read-only are released or settled from memory;
        flush and close never raise; delivery resumes when the disk is writable again."""
        spool = os.path.join(disk.path, "spool")
        tracker = backlog(make_tracker, emulator, spool, 20)

        disk.read_only()
        send_events(tracker, range(20, 30))
        tracker.flush(timeout=2)
        wait_for(lambda: tracker.stats()["retried"] > 20, timeout=10)  # claims failed on the read-only disk
        disk.writable()
        emulator.reset()

        assert 0 == tracker.flush(timeout=DELIVERY)
        assert list(range(30)) == sorted(set(event_numbers(emulator)))
        assert [] == files_in(os.path.join(spool, "playfab", "claimed"))
        assert 0 == tracker.close(timeout=5)

    @pytest.mark.parametrize("damage", ["deleted", "replaced-by-a-file"])
    def test_a_spool_folder_deleted_or_replaced_is_made_again(self, tmp_path, emulator, make_tracker, damage):
        """The spool folder removed under a running game (a cleaner, a player): what comes next is
        held, the folder is made again as soon as it can be, and everything is delivered."""
        spool = str(tmp_path / "spool")
        tracker = backlog(make_tracker, emulator, spool, 5)

        remove_at_once(spool)
        if damage == "replaced-by-a-file":
            with open(spool + ".file", "w") as file:
                file.write("not a folder")
            while not os.path.isfile(spool):  # the tracker may make the folder again meanwhile
                remove_at_once(spool)
                try:
                    os.rename(spool + ".file", spool)
                except OSError:
                    continue
        send_events(tracker, range(5, 10))
        tracker.flush(timeout=2)
        if damage == "replaced-by-a-file":
            os.remove(spool)
        emulator.reset()

        assert 0 == tracker.flush(timeout=DELIVERY)
        assert set(range(5, 10)) <= set(event_numbers(emulator))  # the first five went with the folder
        assert wait_for(lambda: tracker.stats()["spool_problem"] is None, timeout=5)
        assert os.path.isdir(os.path.join(spool, "owners"))

    @pytest.mark.parametrize(
        "name",
        [
            pytest.param("1700000000000-5000000-1700000000000-0123456789ab.jsonl", id="claims-millions"),
            pytest.param("9" * 40 + "-1-1700000000000-0123456789ab.jsonl", id="numbers-that-overflow"),
        ],
    )
    def test_an_absurd_file_is_quarantined_alone_and_never_drives_the_bounds(self, tmp_path, emulator, make_tracker, name):
        """A file whose name claims what it cannot hold goes to quarantine; the real records keep
        their room under the bound and are delivered."""
        spool = tmp_path / "spool"
        (spool / "playfab" / "queue").mkdir(parents=True)
        (spool / "playfab" / "queue" / name).write_text('{"id":"x","data":{}}\n')

        tracker = make_tracker(spool_dir=str(spool), max_spool_records=100)
        send_events(tracker, range(50))

        assert 0 == tracker.flush(timeout=DELIVERY)
        assert (list(range(50)), {}) == (sorted(event_numbers(emulator)), tracker.stats()["dropped"])
        assert 1 == tracker.stats()["quarantined_files"]


class TestBounds:
    def test_the_record_bound_holds_as_records_are_written(self, tmp_path, emulator, make_tracker):
        """With max_spool_records=100 and the service down, 3,000 events in 30 rounds never leave
        more than the bound on disk, and every record over it is counted as spool_full."""
        spool = str(tmp_path / "spool")
        emulator.fail_next(100_000, 503)
        tracker = make_tracker(spool_dir=spool, max_spool_records=100)
        largest = 0
        for round_number in range(30):
            send_events(tracker, range(round_number * 100, (round_number + 1) * 100))
            # Wait for the worker's round, not for a flush: a flush would also check the bounds.
            wait_for(lambda: tracker.stats().get("written_to_spool", 0) >= (round_number + 1) * 100, timeout=10)
            largest = max(largest, records_on_disk(spool))

        stats = tracker.stats()
        assert largest <= 100 + 100  # the bound, plus at most the round being written
        assert 3000 - records_on_disk(spool) == stats["dropped"]["spool_full"]


def remove_at_once(folder):
    """Remove a folder in one step, as far as a tracker writing into it can tell."""
    if os.path.isdir(folder):
        os.rename(folder, folder + ".gone")
        shutil.rmtree(folder + ".gone")


def records_on_disk(spool):
    count = 0
    for path in files_in(os.path.join(spool, "playfab")):
        if "/queue/" in path or "/claimed/" in path:
            try:
                with open(path, encoding="utf-8") as file:
                    count += sum(1 for line in file if line.strip())
            except FileNotFoundError:
                continue  # claimed or settled by the sender since the listing: counted where it went
    return count
