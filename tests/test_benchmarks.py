"""The benchmark scripts keep working (they are not collected as tests; this runs them briefly)."""

import os
import subprocess
import sys

BENCHMARKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks")


def test_hook_benchmark_runs():
    """A quick run prints the hook-cost table and the import times; no speed is asserted here."""
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "bench_hooks.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert 0 == result.returncode, result.stderr
    assert "on_character_event " in result.stdout
    assert "import playhooks" in result.stdout
