"""The chaos soak (``tests/benchmarks/soak.py``) runs, finds nothing lost in a tiny run, and can fail.

A tiny run only: two rounds of two slots, with a second of grace past ``flush_interval`` rather
than issue 8's 150 ms, as this test runs beside the others and is about the soak working, not
about the machine. The soak's own runs (in ``.ci/run``, and ``--long``) hold the 150 ms.
"""

import os
import subprocess
import sys

import pytest

SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks", "soak.py")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SIGSTOP and SIGKILL, and a monotonic clock shared by processes (Linux)"
)


def run_soak(*options):
    result = subprocess.run(
        [sys.executable, SOAK, "--rounds", "2", "--slots", "2", "--seed", "13", "--grace", "1.0", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith("soak: ")]
    return result, summary


class TestSoak:
    def test_a_tiny_soak_loses_nothing(self):
        """Two rounds of kills and faults: exit 0, and the summary line says lost 0."""
        result, summary = run_soak()

        assert 0 == result.returncode, result.stdout + result.stderr
        assert 1 == len(summary), result.stdout
        assert " lost 0," in summary[0], result.stdout
        assert " duplicate sessions 0 " in summary[0], result.stdout
        assert " (miscounted 0)," in summary[0], result.stdout

    def test_a_hidden_delivery_and_a_longer_session_are_reported(self):
        """--self-check hides one delivered event from the check and makes a stored session a
        minute longer: the soak reports one lost and one miscounted, and exits 1."""
        result, summary = run_soak("--self-check")

        assert 1 == result.returncode, result.stdout + result.stderr
        assert 1 == len(summary), result.stdout
        assert " lost 1," in summary[0], result.stdout
        assert "self-check: event " in result.stdout, result.stdout
        assert " (miscounted 1)," in summary[0], result.stdout
        assert "playtime miscounted: session " in result.stdout, result.stdout
