"""The benchmark scripts keep working (they are not collected as tests; this runs them briefly)."""

import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks")


def run_quick(script):
    return subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, script), "--quick"], capture_output=True, text=True, timeout=300
    )


def test_hook_benchmark_runs():
    """A quick run prints the hook-cost table and the import times; no speed is asserted here."""
    result = run_quick("bench_hooks.py")

    assert 0 == result.returncode, result.stderr
    assert "on_character_event " in result.stdout
    assert "import playhooks" in result.stdout


def test_import_benchmark_runs():
    """A quick run prints import playhooks beside import attrs, and with a tracker made."""
    result = run_quick("bench_import.py")

    assert 0 == result.returncode, result.stderr
    assert "import attrs" in result.stdout
    assert "import + Tracker(PlayFab)" in result.stdout


def test_start_benchmark_runs():
    """A quick run prints, for fresh games, Tracker()'s time, the worst frame lateness and when
    the first event reached the spool (every game's: none reports "never")."""
    result = run_quick("bench_start.py")

    assert 0 == result.returncode, result.stderr
    assert "this checkout" in result.stdout
    assert "never" not in result.stdout, result.stdout


def test_emulator_benchmark_runs():
    """A quick run prints the request latency of each route and of the stock server."""
    result = run_quick("bench_emulator.py")

    assert 0 == result.returncode, result.stderr
    assert "kept-alive connection" in result.stdout
    assert "stock wsgiref server" in result.stdout


def test_delivery_benchmark_runs():
    """A quick run prints hook latency under a draining backlog, throughput and memory; each backlog
    says it was spooled whole, nothing dropped."""
    result = run_quick("bench_delivery.py")

    assert 0 == result.returncode, result.stderr
    assert "worker draining a backlog" in result.stdout
    assert "per second" in result.stdout
    assert "pending (service down)" in result.stdout
    # Each backlog holds what it names (the 20k one once held 10k, the rest dropped as queue_full).
    lines = [line for line in result.stdout.splitlines() if "(backlog: " in line]
    assert 3 == len(lines)
    for line in lines:
        asked = line.split("(backlog: ")[1].split(" asked")[0]
        assert f"{asked} asked, {asked} spooled, dropped: none" in line


def test_rate_benchmark_runs():
    """A quick run checks the delay, then prints the rates of playhooks and of bare urllib3, with their ratio."""
    result = run_quick("bench_rate.py")

    assert 0 == result.returncode, result.stderr
    assert "delay check: " in result.stdout
    assert "bare urllib3, 1 connection" in result.stdout
    assert "bare urllib3, 8 threads" in result.stdout
    assert "playhooks / bare 1 connection" in result.stdout


def test_drain_benchmark_runs():
    """A quick run prints the per-round spool costs at two sizes and the drain beside bare urllib3."""
    result = run_quick("bench_drain.py")

    assert 0 == result.returncode, result.stderr
    assert "per-round spool costs" in result.stdout
    assert "playhooks, a tracker starting on it" in result.stdout
    assert "target: drain time <= bare urllib3's" in result.stdout


def test_burst_benchmark_runs():
    """A quick run prints the burst's drops and hook costs beside a no-op function."""
    result = run_quick("bench_burst.py")

    assert 0 == result.returncode, result.stderr
    assert "no-op function (baseline)" in result.stdout
    assert "target: zero queue_full" in result.stdout


def test_cpu_benchmark_runs():
    """A quick run prints wake-late times and background CPU with and without playhooks."""
    result = run_quick("bench_cpu.py")

    assert 0 == result.returncode, result.stderr
    assert "loop without playhooks" in result.stdout
    assert "loop with playhooks" in result.stdout
    assert "CPU per delivered event" in result.stdout


def test_durability_benchmark_runs():
    """A quick run prints burst-to-disk times, checkpoint staleness under a stream, and a verdict."""
    result = run_quick("bench_durability.py")

    assert 0 == result.returncode, result.stderr
    assert "a burst of on_character_event calls" in result.stdout
    assert "a steady stream with one open session" in result.stdout
    assert "verdict: " in result.stdout


def test_pygame_benchmark_runs():
    """A quick run prints the frame times with tracking off and on, and their ratio."""
    pytest.importorskip("pygame")
    result = run_quick("bench_pygame.py")

    assert 0 == result.returncode, result.stderr
    assert "on / off: median x" in result.stdout


def test_relay_benchmark_runs():
    """A quick run prints the accepting rows of the relay under waitress, and a backlog forwarded whole."""
    pytest.importorskip("waitress")
    result = run_quick("bench_relay.py")

    assert 0 == result.returncode, result.stderr
    assert "waitress, 1 process x 8 threads, event " in result.stdout
    assert "waitress, 1 process x 8 threads, session " in result.stdout
    assert "Forwarding a stored backlog of 200 events and 200 sessions" in result.stdout
    assert "(arrived: " not in result.stdout


def test_report_runs(tmp_path):
    """A quick run writes report.md with every section, skipping with a note any peer (or
    matplotlib) that is not installed rather than failing."""
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "report.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert 0 == result.returncode, result.stderr
    report = (tmp_path / "report.md").read_text()
    for section in ("## Targets (issue 13)", "## Hook cost", "## A burst", "## A game loop", "## Import time and memory", "## Delivery"):
        assert section in report
    assert "connections beyond the loopback attempted: 0" in report
    for name in ("segment", "posthog", "mixpanel", "amplitude"):
        assert f"**{name} skipped**" in report or f"| {name} |" in report
