"""The relay's /metrics: counters summed across worker processes through files in one folder.

Processes are real ones (``python -c``) where it matters: a worker that ended is one that exited,
a crash half way through taking files in is an ``os._exit`` at that step. ``prometheus_client``'s
parser is the oracle that the page is what Prometheus reads.
"""

import json
import logging
import os
import subprocess
import sys
from typing import Dict, FrozenSet, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from playhooks.relay import _metrics
from playhooks.relay._metrics import CONTENT_TYPE, COUNTERS, Metrics

# A worker process. It counts, writes its file, says "ready" and waits for a line on stdin (so
# several can be let go at once), does what it was asked, prints the result and exits without
# closing: to the others it is then a worker that ended.
CHILD = r"""
import json, os, sys
from playhooks.relay import _metrics

args = json.loads(sys.argv[1])
alive = args.get("alive")
metrics = _metrics.Metrics(
    args["folder"], args["owner"], is_alive=_metrics._always_alive if alive is None else alive.__contains__
)
for name, amount, labels in args.get("counts", []):
    metrics.count(name, amount, **labels)
metrics.write()
for owner in args.get("more_owners", []):  # files of other workers, as they leave them
    other = _metrics.Metrics(args["folder"], owner)
    for name, amount, labels in args.get("counts", []):
        other.count(name, amount, **labels)
    other.write()

if "lock_seconds" in args:
    _metrics._LOCK_SECONDS = args["lock_seconds"]
if args.get("no_lock"):  # as where there is no fcntl: only the renames keep takers apart
    _metrics.fcntl = None
crash = args.get("crash")
if crash == "before_writing":  # claims taken and counted, the file listing them not yet written
    write = _metrics._write_atomically
    def _write_atomically(folder, name, temporary, data, durable):
        if durable:
            os._exit(0)
        write(folder, name, temporary, data, durable)
    _metrics._write_atomically = _write_atomically
elif crash == "before_deleting":  # the file lists the claims; the claims are still there
    remove = _metrics._remove
    def _remove(path):
        if os.path.basename(path).startswith(args["owner"] + "~"):
            os._exit(0)
        return remove(path)
    _metrics._remove = _remove

print("ready", flush=True)
sys.stdin.readline()
action = args.get("action")
if action == "absorb":
    result = metrics.absorb()
elif action == "totals":
    result = {name: [[list(values), amount] for values, amount in sorted(counts.items())]
              for name, counts in metrics.totals().items()}
else:
    result = None
print(json.dumps(result), flush=True)
os._exit(0)
"""



def accepted_by_playfab(amount):
    return ("accepted", amount, {"service": "playfab"})


def too_large_for_playcamp(amount):
    return ("rejected", amount, {"service": "playcamp", "reason": "too_large"})


class Worker:
    """A worker process running CHILD, held at its barrier until ``go``."""

    def __init__(self, folder, owner, counts=(), **args) -> None:
        command = {"folder": str(folder), "owner": owner, "counts": [[n, a, l] for n, a, l in counts], **args}
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(command)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert "ready" == self.process.stdout.readline().strip()

    def go(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self):
        """What it printed after ``go``; None if it died before printing (a crash it was asked for)."""
        line = self.process.stdout.readline()
        self.process.wait(timeout=60)
        self.process.stdin.close()
        self.process.stdout.close()
        return json.loads(line) if line else None


def run(folder, owner, counts=(), **args):
    """Run one worker to its end; its result."""
    worker = Worker(folder, owner, counts, **args)
    worker.go()
    return worker.result()


def samples(text: str) -> Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]:
    """Every sample of the page, as the Prometheus parser reads it."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def types(text: str) -> Dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def files(folder) -> List[str]:
    return sorted(name for name in os.listdir(folder) if name != ".lock")


def accepted(metrics: Metrics) -> int:
    return metrics.totals()["accepted"].get(("playfab",), 0)


class TestCounting:
    def test_counts_and_labels_render_and_parse(self):
        """Counters are exported with the prefix and ``_total``, their labels and their counts."""
        metrics = Metrics(None, "solo")
        metrics.count("accepted", service="playfab")
        metrics.count("accepted", 2, service="playfab")
        metrics.count("rejected", service="playcamp", reason="rate_limited_player")
        metrics.count("upstream_errors", service="playfab", status="none")
        metrics.count("config_reloads", result="ok")

        text = metrics.render()

        assert {
            ("playhooks_relay_accepted_total", frozenset({("service", "playfab")})): 3,
            ("playhooks_relay_rejected_total", frozenset({("service", "playcamp"), ("reason", "rate_limited_player")})): 1,
            ("playhooks_relay_upstream_errors_total", frozenset({("service", "playfab"), ("status", "none")})): 1,
            ("playhooks_relay_config_reloads_total", frozenset({("result", "ok")})): 1,
        } == samples(text)

    def test_every_counter_has_its_help_and_type_before_anything_is_counted(self):
        """An idle relay's page still declares every counter, so dashboards and alerts find them."""
        text = Metrics(None, "solo").render()

        assert {f"playhooks_relay_{name}": "counter" for name in COUNTERS} == types(text)
        for name, (help_text, _) in COUNTERS.items():
            assert f"# HELP playhooks_relay_{name}_total {help_text}\n" in text
            assert f"# TYPE playhooks_relay_{name}_total counter\n" in text

    def test_totals_sum_by_counter_and_label_values(self):
        """``totals`` gives each counter's counts by label values, in the order COUNTERS declares."""
        metrics = Metrics(None, "solo")
        metrics.count("rejected", service="playfab", reason="invalid")
        metrics.count("rejected", reason="invalid", service="playfab")

        assert {("playfab", "invalid"): 2} == metrics.totals()["rejected"]

    def test_odd_label_values_are_escaped(self, tmp_path):
        """Quotes, backslashes, newlines and non-ASCII label values come back intact, through a file too."""
        odd = ['say "hi"', "back\\slash", "two\nlines", "é 日本 🎮", '\\"\n']
        writer = Metrics(str(tmp_path), "writer")
        for value in odd:
            writer.count("accepted", service=value)
        writer.write()

        text = Metrics(str(tmp_path), "reader").render()

        assert {("playhooks_relay_accepted_total", frozenset({("service", value)})): 1 for value in odd} == samples(text)

    def test_content_type_is_the_text_format_0_0_4(self):
        assert "text/plain; version=0.0.4; charset=utf-8" == CONTENT_TYPE

    @pytest.mark.parametrize(
        "name, labels",
        [
            ("requests", {"service": "playfab"}),  # not declared
            ("accepted_total", {"service": "playfab"}),  # the exported name is not the counted one
            ("accepted", {"service": "playfab", "player": "4F1C2A9B7D3E8A61"}),  # no player id, ever
            ("accepted", {"key": "key-1"}),
            ("accepted", {}),
            ("rejected", {"service": "playfab"}),
        ],
    )
    def test_unknown_counters_and_labels_are_refused(self, name, labels):
        """Only declared counters with exactly their labels: a key or a player id cannot be a label."""
        metrics = Metrics(None, "solo")

        with pytest.raises(ValueError):
            metrics.count(name, **labels)

        assert {name: {} for name in COUNTERS} == metrics.totals()

    def test_label_values_are_strings_and_counts_only_go_up(self):
        metrics = Metrics(None, "solo")

        with pytest.raises(TypeError):
            metrics.count("upstream_errors", service="playfab", status=503)
        with pytest.raises(ValueError):
            metrics.count("accepted", -1, service="playfab")
        with pytest.raises(TypeError):
            metrics.count("accepted", 1.0, service="playfab")

    @pytest.mark.parametrize("owner", ["", "a/b", "../x", "a~b", ".hidden", "x" * 101])
    def test_an_owner_must_be_a_plain_file_name(self, owner):
        with pytest.raises(ValueError):
            Metrics(None, owner)


class TestGauges:
    def test_gauges_are_rendered_after_the_counters(self):
        """The caller's values at this scrape, typed gauge, samples of one name under one HELP."""
        gauges = [
            ("playhooks_relay_pending_records", "Records not yet forwarded.", {"service": "playfab"}, 12),
            ("playhooks_relay_pending_records", "ignored", {"service": "play\"camp\n"}, 0),
            ("playhooks_relay_oldest_pending_seconds", "Age of the oldest record.", {}, 3.25),
            ("playhooks_relay_ready", "1 when /readyz passes.", {}, True),
        ]

        text = Metrics(None, "solo").render(gauges)

        assert 1 == text.count("# HELP playhooks_relay_pending_records Records not yet forwarded.\n")
        assert "gauge" == types(text)["playhooks_relay_ready"] == types(text)["playhooks_relay_pending_records"]
        parsed = samples(text)
        assert 12 == parsed[("playhooks_relay_pending_records", frozenset({("service", "playfab")}))]
        assert 0 == parsed[("playhooks_relay_pending_records", frozenset({("service", 'play"camp\n')}))]
        assert 3.25 == parsed[("playhooks_relay_oldest_pending_seconds", frozenset())]
        assert 1 == parsed[("playhooks_relay_ready", frozenset())]
        assert text.index("counter") < text.index("gauge")

    def test_infinite_and_missing_values_are_written_as_the_format_spells_them(self):
        text = Metrics(None, "solo").render([("a", "a", {}, float("inf")), ("b", "b", {}, float("-inf")), ("c", "c", {}, float("nan"))])

        assert "a +Inf\n" in text and "b -Inf\n" in text and "c NaN\n" in text
        assert float("inf") == samples(text)[("a", frozenset())]

    @pytest.mark.parametrize(
        "gauge",
        [
            ("playhooks relay", "h", {}, 1),
            ("playhooks_relay_accepted_total", "h", {}, 1),  # a counter's name
            ("g", "h", {"bad-label": "x"}, 1),
            ("g", "h", {"__reserved": "x"}, 1),
        ],
    )
    def test_a_gauge_the_format_cannot_carry_is_refused(self, gauge):
        with pytest.raises(ValueError):
            Metrics(None, "solo").render([gauge])

    def test_a_gauge_value_is_a_number(self):
        with pytest.raises(TypeError):
            Metrics(None, "solo").render([("g", "h", {}, "12")])


class TestFiles:
    def test_two_processes_counting_into_one_folder_are_summed_by_each(self, tmp_path):
        """Whichever worker answers the scrape, it answers with both workers' counts."""
        one = Worker(tmp_path, "one", [accepted_by_playfab(3), too_large_for_playcamp(1)], action="totals")
        two = Worker(tmp_path, "two", [accepted_by_playfab(4)], action="totals")
        one.go()
        two.go()

        expected = {"accepted": [[["playfab"], 7]], "rejected": [[["playcamp", "too_large"], 1]]}
        for result in (one.result(), two.result()):
            assert expected == {name: counts for name, counts in result.items() if counts}
        parent = Metrics(str(tmp_path), "parent")
        parent.count("accepted", service="playfab")
        assert 8 == samples(parent.render())[("playhooks_relay_accepted_total", frozenset({("service", "playfab")}))]

    def test_a_process_reports_its_counts_from_memory_and_writes_them_first(self, tmp_path):
        """A worker's file is never behind what it showed, so the next scrape, answered by another
        worker, never shows a counter gone back."""
        first, second = Metrics(str(tmp_path), "first"), Metrics(str(tmp_path), "second")
        first.count("accepted", 5, service="playfab")  # not written: the thread has not run

        assert 5 == accepted(first)
        assert 5 == accepted(second)

    def test_a_worker_that_closes_loses_nothing(self, tmp_path):
        metrics = Metrics(str(tmp_path), "worker", write_interval=3600)
        metrics.start()
        metrics.count("accepted", 2, service="playfab")
        metrics.close()

        assert 2 == accepted(Metrics(str(tmp_path), "reader"))

    def test_start_writes_the_file_at_once_and_makes_the_folder(self, tmp_path):
        folder = tmp_path / "metrics"
        metrics = Metrics(str(folder), "worker", write_interval=3600)
        metrics.start()
        try:
            assert ["worker.json"] == files(folder)
        finally:
            metrics.close()

    def test_without_a_folder_nothing_is_written(self, tmp_path):
        metrics = Metrics(None, "solo")
        metrics.start()
        metrics.count("accepted", service="playfab")
        metrics.close()

        assert 1 == accepted(metrics)
        assert [] == files(tmp_path)

    def test_a_corrupt_file_is_skipped_and_logged_once(self, tmp_path, caplog):
        """A hostile disk's garbage or half a file never breaks /metrics, nor fills the log."""
        run(tmp_path, "good", [accepted_by_playfab(2)])
        (tmp_path / "garbage.json").write_bytes(b"\xff\x00 not json")
        (tmp_path / "half.json").write_text('{"format":1,"owner":"half","counts":[["accepted",["playfab"],', encoding="utf-8")
        (tmp_path / "lies.json").write_text('{"format":1,"counts":[["accepted",["playfab"],-9]],"absorbed":[]}', encoding="utf-8")
        reader = Metrics(str(tmp_path), "reader")

        with caplog.at_level(logging.DEBUG, logger="playhooks"):
            texts = [reader.render(), reader.render()]

        assert samples(texts[0]) == samples(texts[1]) == {
            ("playhooks_relay_accepted_total", frozenset({("service", "playfab")})): 2
        }
        warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
        assert ["garbage.json", "half.json", "lies.json"] == sorted(record.args[0] for record in warnings)

    def test_counters_this_version_does_not_know_are_left_out(self, tmp_path):
        """A newer worker's file, during a rolling restart, still counts for what this one knows."""
        (tmp_path / "newer.json").write_text(
            '{"format":1,"owner":"newer","counts":[["accepted",["playfab"],4],["brand_new",["x"],1]],"absorbed":[]}',
            encoding="utf-8",
        )

        assert 4 == accepted(Metrics(str(tmp_path), "reader"))


class TestAbsorbing:
    def test_a_dead_workers_file_is_taken_in_once(self, tmp_path):
        """Nothing lost, nothing counted twice: before, during and after taking it in."""
        run(tmp_path, "dead", [accepted_by_playfab(3)])
        live = Metrics(str(tmp_path), "live", is_alive=lambda owner: owner == "live")
        live.count("accepted", service="playfab")
        assert 4 == accepted(live)

        assert 1 == live.absorb()

        assert ["live.json"] == files(tmp_path)
        assert 4 == accepted(live)
        assert 0 == live.absorb()
        assert 4 == accepted(live)
        assert 4 == accepted(Metrics(str(tmp_path), "reader"))

    def test_by_default_files_are_kept(self, tmp_path):
        run(tmp_path, "ended", [accepted_by_playfab(3)])
        live = Metrics(str(tmp_path), "live")

        assert 0 == live.absorb()
        assert ["ended.json", "live.json"] == files(tmp_path)
        assert 3 == accepted(live)

    def test_is_alive_failing_keeps_the_file(self, tmp_path):
        run(tmp_path, "ended", [accepted_by_playfab(3)])

        def is_alive(owner):
            raise RuntimeError("cannot tell")

        live = Metrics(str(tmp_path), "live", is_alive=is_alive)

        assert 0 == live.absorb()
        assert 3 == accepted(live)

    def test_a_corrupt_dead_file_is_set_aside(self, tmp_path):
        (tmp_path / "dead.json").write_bytes(b"{")
        live = Metrics(str(tmp_path), "live", is_alive=lambda owner: owner == "live")

        assert 0 == live.absorb()
        assert ["dead.json.bad", "live.json"] == files(tmp_path)

    def test_two_live_workers_racing_take_each_dead_file_in_exactly_once(self, tmp_path):
        """Let go at once, two workers take in 200 dead files between them; a third process reading
        all the while never sees a total other than the right one."""
        dead = [f"dead-{index}" for index in range(200)]
        run(tmp_path, dead[0], [accepted_by_playfab(1), too_large_for_playcamp(2)], more_owners=dead[1:])
        racers = [
            Worker(tmp_path, name, [accepted_by_playfab(100)], alive=["left", "right", "reader"], action="absorb")
            for name in ("left", "right")
        ]
        reader = Metrics(str(tmp_path), "reader")
        expected = {"accepted": {("playfab",): 400}, "rejected": {("playcamp", "too_large"): 400}}
        assert expected == {name: counts for name, counts in reader.totals().items() if counts}

        for racer in racers:
            racer.go()
        seen = []
        while any(racer.process.poll() is None for racer in racers):
            seen.append(reader.totals())
        taken = [racer.result() for racer in racers]

        assert 200 == sum(taken)
        assert ["left.json", "reader.json", "right.json"] == files(tmp_path)
        assert all(expected == {name: counts for name, counts in totals.items() if counts} for totals in seen)
        assert expected == {name: counts for name, counts in reader.totals().items() if counts}

    def test_a_scrape_holds_takers_off_until_it_has_read_every_file(self, tmp_path, monkeypatch):
        """A worker that tries to take a file in while another is reading every file waits, then
        leaves it for its next round: the reading never mixes before and after."""
        run(tmp_path, "dead", [accepted_by_playfab(3)])
        reader = Metrics(str(tmp_path), "reader")
        read, taken = Metrics._read, []

        def read_while_a_taker_tries(self, name):
            if not taken:
                taken.append(
                    run(tmp_path, "taker", [accepted_by_playfab(10)], alive=["taker", "reader"], action="absorb", lock_seconds=0.05)
                )
            return read(self, name)

        monkeypatch.setattr(Metrics, "_read", read_while_a_taker_tries)

        assert 13 == accepted(reader)
        assert [0] == taken
        assert ["dead.json", "reader.json", "taker.json"] == files(tmp_path)

    def test_without_the_lock_racing_workers_still_take_each_dead_file_in_exactly_once(self, tmp_path):
        """Without ``flock``, the claim by rename alone keeps two takers apart; only a reading at the
        very moment may be off (the documented window), never the counts taken in."""
        dead = [f"dead-{index}" for index in range(200)]
        run(tmp_path, dead[0], [accepted_by_playfab(1)], more_owners=dead[1:])
        racers = [
            Worker(tmp_path, name, [accepted_by_playfab(100)], alive=["left", "right"], action="absorb", no_lock=True)
            for name in ("left", "right")
        ]

        for racer in racers:
            racer.go()
        taken = [racer.result() for racer in racers]

        assert 200 == sum(taken)
        assert ["left.json", "right.json"] == files(tmp_path)
        assert 400 == accepted(Metrics(str(tmp_path), "reader"))

    @pytest.mark.parametrize("crash", ["before_writing", "before_deleting"])
    def test_a_worker_dying_while_taking_files_in_loses_and_doubles_nothing(self, tmp_path, crash):
        """Died with claims not yet in its file, or in its file and not yet deleted: either way a
        reader counts them once, and whoever takes the dead taker in ends with them counted once."""
        run(tmp_path, "first-dead", [accepted_by_playfab(3)], more_owners=["second-dead"])
        taker = run(tmp_path, "taker", [accepted_by_playfab(10)], alive=["taker"], action="absorb", crash=crash)
        assert taker is None  # it died where it was told to
        assert [name for name in files(tmp_path) if "~" in name]  # and left its claims behind
        reader = Metrics(str(tmp_path), "reader")
        assert 16 == accepted(reader)

        survivor = Metrics(str(tmp_path), "survivor", is_alive=lambda owner: owner in ("survivor", "reader"))
        survivor.count("accepted", service="playfab")
        survivor.absorb()

        assert ["reader.json", "survivor.json"] == files(tmp_path)
        assert 17 == accepted(survivor) == accepted(reader)

    def test_the_taker_of_a_dead_taker_survives_its_own_death_too(self, tmp_path):
        """Claims passed on from a dead taker to the next, which dies too, still count once."""
        run(tmp_path, "first-dead", [accepted_by_playfab(3)])
        run(tmp_path, "taker-1", [accepted_by_playfab(10)], alive=["taker-1"], action="absorb", crash="before_writing")
        run(tmp_path, "taker-2", [accepted_by_playfab(20)], alive=["taker-2"], action="absorb", crash="before_deleting")
        reader = Metrics(str(tmp_path), "reader")
        assert 33 == accepted(reader)

        survivor = Metrics(str(tmp_path), "survivor", is_alive=lambda owner: owner in ("survivor", "reader"))
        survivor.absorb()

        assert ["reader.json", "survivor.json"] == files(tmp_path)
        assert 33 == accepted(survivor) == accepted(reader)


def test_no_third_party_import():
    """prometheus_client is the tests' oracle, never the relay's dependency."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys, playhooks.relay._metrics; print('prometheus_client' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "False" == result.stdout.strip()


def test_exports():
    """The surface the relay app uses; sorted, as every module's."""
    assert ["CONTENT_TYPE", "COUNTERS", "Metrics", "PREFIX"] == _metrics.__all__
