"""The samples without pygame, run as a new user runs them (Coin Rush's are in tests/adapters)."""

import ast
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quickstart_sends_its_session_and_event(tmp_path):
    """The README's example plays long enough to be sent, and prints what it wrote and its stats."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "samples", "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    written = (tmp_path / "telemetry.jsonl").read_text(encoding="utf-8")
    payloads = [json.loads(line) for line in written.splitlines()]
    [session] = [payload for payload in payloads if "sessionId" in payload]
    [event] = [payload for payload in payloads if "EventName" in payload]
    stats = ast.literal_eval(result.stdout.splitlines()[-1])

    assert session["durationSeconds"] >= 1
    assert "level_completed" == event["EventName"]
    assert ({}, 2) == (stats["dropped"], stats["handed_to_sinks"])
    assert result.stdout.startswith(written)
