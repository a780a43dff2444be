"""The Ren'Py adapter in the real engines: the sample visual novel, run by its testcases under Xvfb
against the emulator, on Ren'Py 8.0.3 and 8.3.4 (see renpy_engines for where each comes from)."""

import glob
import os
import shutil
import subprocess

import pytest

from playhooks.emulator import Emulator
from playhooks._renpy_install import install

from helpers import ROOT, SECRET_KEY, ServedInThread
from renpy_engines import ENGINES

SAMPLE = os.path.join(ROOT, "samples", "renpy_vn")
# Debian's 8.0.3 runs on Python 3.11, whose compiler rejects the line ranges 8.0's screen language
# gives some nodes. Test harness only, never installed for creators: raise each end to its start.
SHIM = '''
python early:
    import ast as _ast
    import renpy.sl2.slast as _slast

    if renpy.version_tuple[:2] == (8, 0):
        def _shim_compile_expr(loc, node):
            expr = _ast.Expression(body=node)
            _ast.fix_missing_locations(expr)
            for each in _ast.walk(expr):
                if getattr(each, "end_lineno", None) is not None and each.end_lineno < each.lineno:
                    each.end_lineno = each.lineno
                if getattr(each, "end_col_offset", None) is not None and each.end_col_offset < each.col_offset:
                    each.end_col_offset = each.col_offset
            return compile(expr, loc[0], "eval")

        _slast.compile_expr = _shim_compile_expr
'''


@pytest.fixture(scope="module", params=ENGINES, ids=lambda engine: engine.version)
def engine(request):
    """An engine, or a skip saying how to get it (a failure under CI)."""
    reason = request.param.missing()
    if reason:
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    return request.param


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The sample with playhooks installed by `playhooks renpy install` (downloaded once)."""
    game_dir = tmp_path_factory.mktemp("installed") / "renpy_vn"
    shutil.copytree(SAMPLE, game_dir)
    install(str(game_dir), "3.9")
    return game_dir


@pytest.fixture
def place(engine, tmp_path):
    """A folder the engine sees, for the game and its player's home."""
    folder = engine.folder(tmp_path)
    yield folder
    engine.discard(folder)


def game(installed, place, consent=True):
    """A copy of the installed sample, with the creator's consent default and the test shim."""
    game_dir = place / "renpy_vn"
    shutil.copytree(installed, game_dir)
    script = game_dir / "game" / "00playhooks.rpy"
    script.write_text(script.read_text().replace("define playhooks_consent_default = False", f"define playhooks_consent_default = {consent}"))
    (game_dir / "game" / "zz_test_shim.rpy").write_text(SHIM)
    return game_dir


def play(engine, game_dir, testcase, emulator):
    """Run a testcase of the game in the engine, sending directly to the emulator (developer mode)."""
    result = subprocess.run(
        engine.command(game_dir, "test", testcase), env=environment(engine, game_dir, emulator),
        capture_output=True, text=True, cwd=str(game_dir),
    )  # fmt: skip
    traceback = game_dir / "traceback.txt"
    assert result.returncode == 0, (traceback.read_text() if traceback.exists() else "") + result.stderr[-3000:]
    return result


def environment(engine, game_dir, emulator):
    """The player's home beside the game (its persistent data outlives each run), and the
    variables of developer mode's direct sending."""
    return engine.environment(game_dir.parent, {
        "SDL_AUDIODRIVER": "dummy",
        "SDL_VIDEODRIVER": "x11",  # 8.0.3's test command would otherwise force the dummy driver, and fail in GL
        "PLAYHOOKS_PLAYFAB_TITLE_ID": "ABCD",
        "PLAYHOOKS_PLAYFAB_SECRET_KEY": SECRET_KEY,
        "PLAYHOOKS_PLAYFAB_URL": emulator.url,
        "PLAYHOOKS_PLAYCAMP_API_KEY": "key-1:renpy-test",
        "PLAYHOOKS_PLAYCAMP_URL": emulator.url,
    })  # fmt: skip


def events(emulator):
    return [(event["EventName"], {k: v for k, v in (event.get("Body") or {}).items() if k != "playhooks_event_id"}) for event in emulator.events]


class TestInTheEngine:
    def test_each_event_once_through_rollback_a_replayed_choice_a_new_branch_save_and_load(self, engine, installed, place):
        """`branches`, then `load_again` in a new process: a session each, and each event once."""
        game_dir = game(installed, place)
        with Emulator() as emulator:
            play(engine, game_dir, "branches", emulator)
            assert glob.glob(str(game_dir / "game" / "saves" / "1-1-*.save")), "the save did not succeed"
            assert glob.glob(str(game_dir / "game" / "saves" / "auto-1-*.save")), "the autosave did not succeed"
            assert len(emulator.events) == 4 and len(emulator.sessions) == 1  # the quit flushed: nothing waits for a next launch
            play(engine, game_dir, "load_again", emulator)
            assert len(emulator.sessions) == 2
            assert events(emulator) == [
                ("chapter_completed", {"chapter": 1}),
                ("chose_stairs", {}),
                ("chose_wait", {}),
                ("ending_reached", {"ending": "dawn"}),
            ]
            assert all(1 <= session["durationSeconds"] <= 120 for session in emulator.sessions), emulator.sessions
            assert len({session["userId"] for session in emulator.sessions}) == 1  # one anonymous id per install
            assert {session["platform"] for session in emulator.sessions} == {"Other"}  # the engine's, on Linux
            assert emulator.counters["duplicates"] == 0

    def test_a_reload_neither_sends_again_nor_ends_the_session(self, engine, installed, place):
        """Shift+R at the menu: the engine runs its quit callbacks and resumes the game from the
        last label; what was sent is not sent again, play goes on in the same session, and what
        follows is still delivered."""
        game_dir = game(installed, place)
        with Emulator() as emulator:
            play(engine, game_dir, "reload", emulator)
            assert emulator.wait_until(lambda e: len(e.sessions) == 1, 10)
            assert events(emulator) == [("chapter_completed", {"chapter": 1}), ("chose_stairs", {})]
            assert emulator.counters["duplicates"] == 0
        (session,) = emulator.sessions
        assert session["durationSeconds"] >= 1, session

    def test_with_consent_off_nothing_is_recorded_spooled_or_sent(self, engine, installed, place):
        game_dir = game(installed, place, consent=False)
        with Emulator() as emulator:
            play(engine, game_dir, "branches", emulator)
            assert emulator.requests == []
        assert not glob.glob(str(game_dir / "game" / "saves" / "playhooks" / "**" / "*.jsonl"), recursive=True)

    def test_a_player_who_turns_sharing_off_in_the_preference_is_not_recorded_from_then_on(self, engine, installed, place):
        """The `playhooks_preference` screen's "No": the session ends there, the choice after it
        is not sent, and the next launch (the choice is kept in persistent) sends nothing."""
        game_dir = game(installed, place)
        with Emulator() as emulator:
            play(engine, game_dir, "preference", emulator)
            assert events(emulator) == [("chapter_completed", {"chapter": 1})]
            assert len(emulator.sessions) == 1
            before = len(emulator.requests)
            play(engine, game_dir, "relaunch", emulator)
            assert len(emulator.requests) == before

    def test_install_finds_the_engines_python_in_the_sdk_the_game_is_in(self, engine, tmp_path):
        from playhooks._renpy_install import engine_python

        sdk = tmp_path / "sdk"
        os.makedirs(sdk)
        os.symlink(engine.home / "renpy", sdk / "renpy")
        os.makedirs(sdk / "lighthouse" / "game")
        assert engine_python(str(sdk / "lighthouse")) == ("3.9", f"Ren'Py {engine.version} in {sdk}")

    def test_lint_refuses_a_bad_event_name(self, engine, installed, place):
        game_dir = game(installed, place)
        (game_dir / "game" / "zz_bad.rpy").write_text("label bad_event:\n    playhooks event " + "x" * 65 + "\n    return\n")
        result = subprocess.run(
            engine.command(game_dir, "lint", screen=False), capture_output=True, text=True, env=engine.environment(place, {})
        )
        report = result.stdout + result.stderr + "".join(path.read_text() for path in game_dir.glob("lint.txt"))
        assert "must be 1 to 64 letters, digits or _" in report, report[-2000:]


class TestShipped:
    def test_outside_developer_mode_a_secret_is_refused_and_the_game_delivers_through_the_relay(self, engine, installed, place, tmp_path, monkeypatch):
        """The same game, developer mode off: the variables' server keys are refused, saying why,
        and its events go through the relay, which alone holds the keys, to the services."""
        from playhooks.relay import Relay

        monkeypatch.setenv("RELAY_PLAYFAB_KEY", SECRET_KEY)
        monkeypatch.setenv("RELAY_PLAYCAMP_KEY", "key-1:relay-only")
        with Emulator(playfab_secret_keys=[SECRET_KEY], playcamp_keys=["key-1:relay-only"]) as emulator:
            config = tmp_path / "relay.toml"
            config.write_text(
                f'[playcamp]\nurl = "{emulator.url}"\napi_key_env = "RELAY_PLAYCAMP_KEY"\n'
                f'[playfab]\ntitle_id = "ABCD"\nurl = "{emulator.url}"\nsecret_key_env = "RELAY_PLAYFAB_KEY"\n'
                '[[ingest_keys]]\nkey = "ik_lighthouse_1"\ngame = "lighthouse"\n'
            )
            relay = Relay(str(config), spool_dir=str(tmp_path / "relay-spool")).start()
            served = ServedInThread(relay)
            try:
                game_dir = game(installed, place)
                script = game_dir / "game" / "00playhooks.rpy"
                text = script.read_text().replace("define playhooks_relay_url = None", f'define playhooks_relay_url = "{served.url}"')
                script.write_text(text.replace("define playhooks_ingest_key = None", 'define playhooks_ingest_key = "ik_lighthouse_1"'))
                (game_dir / "game" / "zz_shipped.rpy").write_text("define config.developer = False\n")
                result = play(engine, game_dir, "branches", emulator)  # the variables hold the server keys
                assert "is a server secret, refused outside developer mode" in result.stderr + (game_dir / "log.txt").read_text(errors="replace")
                assert emulator.wait_until(lambda e: len(e.events) == 4 and len(e.sessions) == 1, 20)
                # each once; the relay forwards in batches, in no promised order
                assert sorted(name for name, _ in events(emulator)) == ["chapter_completed", "chose_stairs", "chose_wait", "ending_reached"]
            finally:
                served.stop()
                relay.close(1)


class TestFocus:
    def test_while_the_window_has_no_focus_playtime_pauses(self, engine, installed, place):
        from datetime import datetime

        game_dir = game(installed, place)
        with Emulator() as emulator:
            play(engine, game_dir, "focus", emulator)
            assert emulator.wait_until(lambda e: len(e.sessions) == 1, 10)
        (session,) = emulator.sessions
        wall = (datetime.fromisoformat(session["endedAt"][:-1]) - datetime.fromisoformat(session["startedAt"][:-1])).total_seconds()
        assert wall - session["durationSeconds"] >= 1.5, session  # the two seconds without focus are not counted


class TestCrash:
    def test_a_session_the_game_crashed_in_is_sent_on_the_next_launch(self, engine, installed, place):
        """Killed without a chance to say anything (as a crash): its last checkpoint is the session, sent next time."""
        import signal

        from helpers import wait_for

        game_dir = game(installed, place)
        checkpoints = game_dir / "game" / "saves" / "playhooks" / "sessions"
        with Emulator() as emulator:
            process = subprocess.Popen(
                engine.command(game_dir, "test", "linger"), env=environment(engine, game_dir, emulator), cwd=str(game_dir),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                assert wait_for(lambda: checkpoints.is_dir() and any(checkpoints.iterdir()), 30), "no checkpoint was written"
            finally:
                os.killpg(process.pid, signal.SIGKILL)  # the engine, Xvfb and all: nothing runs at exit
                process.wait(10)
            assert emulator.sessions == []
            play(engine, game_dir, "relaunch", emulator)
            assert emulator.wait_until(lambda e: any(s.get("metadata", {}).get("playhooks_recovered") for s in e.sessions), 10)


class TestBuildsThatCannotRunHere:
    """Android, iOS and web builds need devices or SDK parts this machine has not: what the
    adapter makes of the engine's flags, read from a stand-in for the `renpy` module."""

    @pytest.mark.parametrize("flag, platform", [("android", "Android"), ("ios", "iOS"), ("emscripten", "Web"), (None, "Other")])
    def test_the_platform_is_the_engines(self, flag, platform):
        from types import SimpleNamespace

        from playhooks.adapters.renpy import _platform

        engine = SimpleNamespace(android=False, ios=False, emscripten=False)
        if flag:
            setattr(engine, flag, True)
        assert _platform(engine) == platform

    def test_a_web_build_runs_without_playhooks_and_says_so_once(self, capsys):
        """No threads or sockets there: no tracker is made, and the game runs on."""
        import threading
        from types import SimpleNamespace

        from playhooks.adapters.renpy import _make_tracker

        engine = SimpleNamespace(emscripten=True, config=SimpleNamespace(savedir="saves", developer=False))
        threads = threading.active_count()
        assert _make_tracker(engine, "https://telemetry.example.com", "ik_lighthouse_1") is None
        assert threading.active_count() == threads
        assert capsys.readouterr().err == "playhooks: disabled in web builds (no threads, no sockets): nothing is recorded\n"
