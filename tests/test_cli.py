"""The `playhooks` command and the samples run as a new user would run them."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*arguments, cwd=None):
    return subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, check=True, timeout=60, cwd=cwd
    )


class TestVersion:
    def test_version_is_the_packages(self):
        import configparser

        import playhooks

        assert run("-m", "playhooks", "--version").stdout == f"playhooks {playhooks.__version__}\n"
        setup = configparser.ConfigParser()
        setup.read(os.path.join(ROOT, "setup.cfg"))
        assert setup["metadata"]["version"] == "attr: playhooks.__version__"  # one place to change it


class TestDemo:
    def test_demo_prints_a_session_and_its_events(self):
        """`playhooks demo` plays a simulated session and prints valid payloads for both services."""
        output = run("-m", "playhooks", "demo").stdout
        session_text = output.split("POST /v1/server/playtime/sessions:\n")[1].split("\n\n")[0]
        event_lines = output.split("POST /Server/WriteCharacterEvent:\n")[1].splitlines()
        session = json.loads(session_text)
        events = [json.loads(line) for line in event_lines]

        assert (1320, "player-42") == (session["durationSeconds"], session["userId"])
        assert ["coin_collected", "level_completed"] * 3 + ["player_died"] == [e["EventName"] for e in events]

    def test_demo_payloads_pass_the_server_rules(self):
        """What the demo prints is accepted by the same strict parser a server uses."""
        from playhooks import _models, _wire

        output = run("-m", "playhooks", "demo").stdout
        session_text = output.split("sessions:\n")[1].split("\n\n")[0]
        _wire.structure(json.loads(session_text), _models.PlaytimeSession)
        for line in output.split("WriteCharacterEvent:\n")[1].splitlines():
            _wire.structure(json.loads(line), _models.CharacterEvent)


class TestEmulateFlags:
    @pytest.mark.parametrize(
        "flag, value",
        [
            ("--rate-limit", "-1"),
            ("--rate-limit", "0"),
            ("--port", "99999"),
            ("--port", "-1"),
            ("--fault-rate", "2"),
            ("--fault-rate", "nan"),
            ("--record", "{missing}/record.jsonl"),
            ("--record", "{file}/record.jsonl"),
        ],
        ids=["negative-rate", "zero-rate", "port-too-high", "negative-port", "fault-rate-over-1", "fault-rate-nan", "record-in-a-missing-folder", "record-under-a-file"],
    )
    def test_a_bad_value_is_one_line_naming_the_flag_and_status_2(self, tmp_path, flag, value):
        """Each flag is checked before serving: one line on stderr that names it, exit status 2."""
        (tmp_path / "file").write_text("")
        value = value.format(missing=tmp_path / "missing", file=tmp_path / "file")  # a parent that is a file: even root cannot write there
        command = [sys.executable, "-m", "playhooks", "emulate", "--port", "0", flag, value]
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)

        assert (2, "") == (result.returncode, result.stdout)
        assert 1 == len(result.stderr.splitlines())
        assert result.stderr.startswith(f"playhooks emulate: error: argument {flag}: ")
