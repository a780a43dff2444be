"""The pygame adapter with the real pygame (or pygame-ce), headless, events posted through SDL."""

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
pygame = pytest.importorskip("pygame")

from playhooks.adapters.pygame import IS_PYGAME_CE, PygameAdapter  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COIN_RUSH = [sys.executable, os.path.join(ROOT, "samples", "coin_rush.py"), "--headless"]


@pytest.fixture(scope="module", autouse=True)
def display():
    pygame.init()
    pygame.display.set_mode((64, 48))
    yield
    pygame.quit()


@pytest.fixture
def adapter(tracker):
    adapter = PygameAdapter(tracker, "player-1", overlay_key=pygame.K_F3)
    yield adapter
    adapter.end()


def post(*names, **attributes):
    """Post events by name through SDL's queue and feed what comes back, as a game loop would."""
    pygame.event.clear()
    for name in names:
        assert pygame.event.post(pygame.event.Event(getattr(pygame, name), **attributes))
    return pygame.event.get()


def feed(adapter, *names, **attributes):
    for event in post(*names, **attributes):
        adapter.process(event)


def sessions(tracker, sink):
    assert 0 == tracker.flush(timeout=5)
    return sink.sessions


class TestPauses:
    def test_focus_loss_pauses_and_focus_gain_resumes(self, adapter, tracker, sink, clock):
        """Time out of focus is not play time."""
        clock.advance(10)
        feed(adapter, "WINDOWFOCUSLOST")
        clock.advance(100)
        feed(adapter, "WINDOWFOCUSGAINED")
        clock.advance(5)
        feed(adapter, "QUIT")

        [session] = sessions(tracker, sink)
        assert 15 == session["durationSeconds"]

    def test_minimize_pauses_and_restore_resumes(self, adapter, tracker, sink, clock):
        """A minimized window is paused until it is restored."""
        clock.advance(20)
        feed(adapter, "WINDOWMINIMIZED")
        clock.advance(60)
        feed(adapter, "WINDOWRESTORED")
        clock.advance(10)
        feed(adapter, "WINDOWCLOSE")

        assert [30] == [s["durationSeconds"] for s in sessions(tracker, sink)]

    def test_restore_without_focus_gained_resumes(self, adapter, tracker, sink, clock):
        """Win+D then a taskbar click: MINIMIZED, FOCUSLOST, RESTORED, and no FOCUSGAINED."""
        clock.advance(10)
        feed(adapter, "WINDOWMINIMIZED", "WINDOWFOCUSLOST")
        clock.advance(50)
        feed(adapter, "WINDOWRESTORED")
        clock.advance(10)

        assert adapter.active
        feed(adapter, "QUIT")
        assert [20] == [s["durationSeconds"] for s in sessions(tracker, sink)]

    def test_transitions_are_idempotent(self, adapter, tracker, sink, clock):
        """Focus lost while minimized, repeated events: one pause, counted once."""
        clock.advance(10)
        feed(adapter, "WINDOWFOCUSLOST", "WINDOWMINIMIZED", "WINDOWFOCUSLOST")
        clock.advance(30)
        feed(adapter, "WINDOWFOCUSGAINED")
        assert not adapter.active  # still minimized
        clock.advance(30)
        feed(adapter, "WINDOWRESTORED", "WINDOWFOCUSGAINED", "WINDOWRESTORED")
        clock.advance(10)
        feed(adapter, "QUIT")

        assert [20] == [s["durationSeconds"] for s in sessions(tracker, sink)]

    def test_the_legacy_activeevent_is_ignored(self, adapter, tracker, sink, clock):
        """ACTIVEEVENT comes along with WINDOWFOCUSLOST on X11: only the WINDOW* family counts."""
        feed(adapter, "ACTIVEEVENT", gain=0, state=2)

        assert adapter.active

    def test_mobile_background_pauses(self, adapter, tracker, sink, clock):
        """On mobile the app going to the background pauses, coming back resumes."""
        clock.advance(10)
        feed(adapter, "APP_WILLENTERBACKGROUND", "APP_DIDENTERBACKGROUND")
        clock.advance(40)
        feed(adapter, "APP_WILLENTERFOREGROUND", "APP_DIDENTERFOREGROUND")
        clock.advance(10)
        feed(adapter, "QUIT")

        assert [20] == [s["durationSeconds"] for s in sessions(tracker, sink)]


class TestEnding:
    def test_quit_and_windowclose_end_the_session_once(self, adapter, tracker, sink, clock):
        """A window close sends WINDOWCLOSE then QUIT: one session end."""
        clock.advance(10)
        feed(adapter, "WINDOWCLOSE", "QUIT")
        adapter.end()

        assert 1 == len(sessions(tracker, sink))

    def test_events_after_the_end_change_nothing(self, adapter, tracker, sink, clock):
        """Focus events after the session ended neither resume nor restart it."""
        clock.advance(10)
        feed(adapter, "QUIT")
        feed(adapter, "WINDOWFOCUSLOST", "WINDOWFOCUSGAINED")

        assert (False, 1) == (adapter.active, len(sessions(tracker, sink)))

    def test_a_game_s_own_tracker_sends_at_exit_too(self, tmp_path):
        """Not only the default tracker: any open tracker is closed at exit, its session sent."""
        out = tmp_path / "out.jsonl"
        script = (
            "import os; os.environ['SDL_VIDEODRIVER'] = 'dummy'\n"
            "import pygame, playhooks\n"
            "from playhooks.adapters.pygame import PygameAdapter\n"
            "from playhooks.testing import ManualClock\n"
            "clock = ManualClock()\n"
            f"tracker = playhooks.Tracker([playhooks.JsonlSink({str(out)!r})], clock=clock, flush_interval=3600)\n"
            "adapter = PygameAdapter(tracker, 'player-1')\n"
            "clock.advance(7)\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

        [session] = [json.loads(line) for line in out.read_text().splitlines()]
        assert 7 == session["durationSeconds"]

    def test_atexit_ends_a_session_the_game_never_ended(self, tmp_path):
        """A game that exits without QUIT still sends its session, from the atexit fallback."""
        out = tmp_path / "out.jsonl"
        script = (
            "import os; os.environ['SDL_VIDEODRIVER'] = 'dummy'\n"
            "import pygame, playhooks\n"
            "from playhooks.adapters.pygame import PygameAdapter\n"
            "from playhooks.testing import ManualClock\n"
            "clock = ManualClock()\n"
            f"tracker = playhooks.configure(sinks=[playhooks.JsonlSink({str(out)!r})], clock=clock)\n"
            "adapter = PygameAdapter(tracker, 'player-1')\n"
            "clock.advance(12)\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

        [session] = [json.loads(line) for line in out.read_text().splitlines()]
        assert 12 == session["durationSeconds"]


class TestOverlay:
    def test_the_key_toggles_the_overlay(self, adapter):
        """The chosen key shows and hides the panel; other keys do nothing."""
        feed(adapter, "KEYDOWN", key=pygame.K_F3)
        shown = adapter.show_overlay
        feed(adapter, "KEYDOWN", key=pygame.K_a)
        still = adapter.show_overlay
        feed(adapter, "KEYDOWN", key=pygame.K_F3)

        assert (True, True, False) == (shown, still, adapter.show_overlay)

    def test_the_overlay_draws_the_live_stats(self, adapter, tracker, clock):
        """With the overlay on, the panel reads session time and counts from the tracker."""
        clock.advance(75)
        tracker.on_character_event("x", playfab_id="P", character_id="C")
        tracker.flush(timeout=5)
        adapter.show_overlay = True
        surface = pygame.Surface((320, 200))
        surface.fill((0, 0, 0))
        adapter.draw(surface)

        assert ["playhooks  session 1:15  playing", "sent 1  pending 0  dropped 0"] == adapter._overlay_lines()
        assert surface.get_at((12, 12)) != pygame.Color(0, 0, 0)

    def test_hidden_overlay_draws_nothing(self, adapter):
        """Off, draw leaves the surface alone."""
        surface = pygame.Surface((64, 64))
        surface.fill((1, 2, 3))
        adapter.draw(surface)

        assert pygame.Color(1, 2, 3) == surface.get_at((12, 12))


def test_it_says_which_pygame_it_runs_on(adapter):
    """The adapter knows pygame from pygame-ce (event numbers differ; constants come by name)."""
    assert ("pygame-ce" if IS_PYGAME_CE else "pygame") in repr(adapter)


def test_a_clear_error_without_pygame():
    """With neither pygame nor pygame-ce installed, importing the adapter says what to install."""
    script = (
        "import sys; sys.modules['pygame'] = None\n"
        "try:\n"
        "    import playhooks.adapters.pygame\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)

    assert result.stdout.startswith("PlayhooksError playhooks.adapters.pygame needs pygame or pygame-ce: pip install")


def without_playhooks_variables():
    """This environment without PLAYHOOKS_* variables: Coin Rush then sends to its own emulator."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PLAYHOOKS_")}


def run_coin_rush(tmp_path, *arguments, environment=None):
    """Coin Rush headless, to its end."""
    return subprocess.run(
        [*COIN_RUSH, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=without_playhooks_variables() if environment is None else environment,
        cwd=tmp_path,
    )


def recorded_session(output):
    """The session Coin Rush says its in-process emulator recorded."""
    return json.loads(output.split("PlayCamp session(s):\n")[1].split("\nand ")[0])


def test_the_sample_plays_headless_and_delivers_over_http(tmp_path):
    """Coin Rush with its autopilot sends its session and events to the emulator over HTTP."""
    result = run_coin_rush(tmp_path, "--frames", "900")

    assert 0 == result.returncode, result.stderr
    session = recorded_session(result.stdout)
    counts = result.stdout.split("character events: ")[1].splitlines()[0]
    assert (15, "coin-rush-player") == (session["durationSeconds"], session["userId"])
    assert "coin_collected x" in counts
    assert "level_completed x" in counts


def test_the_sample_sends_where_the_environment_says(tmp_path):
    """With PLAYHOOKS_* set, Coin Rush sends there (here: an emulator the test runs) and starts none."""
    from playhooks.emulator import Emulator

    with Emulator(playcamp_keys=["game:key"], playfab_secret_keys=["title-secret"]) as emulator:
        environment = dict(
            os.environ,
            PLAYHOOKS_PLAYCAMP_API_KEY="game:key",
            PLAYHOOKS_PLAYCAMP_URL=emulator.url,
            PLAYHOOKS_PLAYFAB_TITLE_ID="ABCD",
            PLAYHOOKS_PLAYFAB_SECRET_KEY="title-secret",
            PLAYHOOKS_PLAYFAB_URL=emulator.url,
            PLAYHOOKS_SPOOL_DIR=str(tmp_path / "spool"),
        )
        result = run_coin_rush(tmp_path, "--frames", "600", environment=environment)

        assert 0 == result.returncode, result.stderr
        assert "local emulator" not in result.stdout
        assert [10] == [session["durationSeconds"] for session in emulator.sessions]
        assert emulator.events


def test_the_sample_names_a_playhooks_variable_to_fix(tmp_path):
    """A URL without its key is a one-line error at start, not a traceback, nor the emulator instead."""
    environment = dict(without_playhooks_variables(), PLAYHOOKS_PLAYCAMP_URL="http://127.0.0.1:9")
    result = run_coin_rush(tmp_path, environment=environment)

    assert (2, "") == (result.returncode, result.stdout)
    assert result.stderr.splitlines()[-1].endswith(
        "error: PLAYHOOKS_PLAYCAMP_URL is set without PLAYHOOKS_PLAYCAMP_API_KEY: set the key too"
    )


def test_the_sample_headless_ends_by_itself(tmp_path):
    """Headless, no window can be closed: without --frames it plays 15 s of game time and quits."""
    result = run_coin_rush(tmp_path)

    assert 0 == result.returncode, result.stderr
    assert 15 == recorded_session(result.stdout)["durationSeconds"]


@pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) == signal.SIG_IGN, reason="SIGINT is ignored here, so it would be in the game too"
)
def test_ctrl_c_ends_the_sample_cleanly_and_sends_the_session(tmp_path):
    """SIGINT mid-game: no traceback, exit status 130 (the shell's for Ctrl-C), the session sent."""
    command = [*COIN_RUSH, "--frames", str(10**9)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=without_playhooks_variables(), cwd=tmp_path
    ) as game:
        watchdog = threading.Timer(60, game.kill)  # a game that never starts fails the test instead of hanging it
        watchdog.start()
        try:
            game.stdout.readline()  # it has started
            progress = game.stdout.readline()  # and played 5 s of game time: a session long enough to be sent
            game.send_signal(signal.SIGINT)
            output, errors = game.communicate(timeout=60)
        finally:
            watchdog.cancel()
            if game.poll() is None:
                game.kill()

    assert ["5", "s"] == progress.split()[:2]
    assert "Traceback" not in errors
    assert 130 == game.returncode, errors
    assert 5 <= recorded_session(output)["durationSeconds"]
