"""What `import playhooks` costs a game's start, against `import attrs`, which it cannot beat.

    python tests/benchmarks/bench_import.py                 # 30 rounds (about a minute)
    python tests/benchmarks/bench_import.py --quick         # 5 rounds, a smoke run
    PYTHONPATH=/tmp/old-checkout python tests/benchmarks/bench_import.py    # another checkout
    python tests/benchmarks/bench_import.py --compare /tmp/old-checkout    # both, in one run
    python tests/benchmarks/bench_import.py --bytecode      # with compiled files, as pip installs

Each statement runs in a fresh interpreter (``sys.executable -c``, no ``-X importtime``), and the
statements take turns within every round, so a noisy neighbour slows them all alike. Medians;
the interpreter's own start (``pass``) is subtracted before the ratio to ``import attrs`` is taken.
The interpreters run in an empty folder, so ``PYTHONPATH`` decides which playhooks is imported
(the path of each is printed), not the current folder.

Where ``PYTHONDONTWRITEBYTECODE`` is set, playhooks is compiled from its source at every import
while attrs reads the compiled files its installer wrote: ``--bytecode`` gives every module
compiled files (in a temporary ``PYTHONPYCACHEPREFIX``, so no checkout is written to), as a
``pip install`` does. Use ``python -X importtime -c 'import playhooks'`` to see where it goes.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

# (label, statement): the rows of every round, in order. The last makes a tracker as a game
# delivering to PlayFab does at its start, its spool kept from one run to the next as a game's is.
STATEMENTS = [
    ("python (start only)", "pass"),
    ("import attrs", "import attrs"),
    ("import playhooks", "import playhooks"),
    ("import + Tracker()", "import playhooks; playhooks.Tracker().close()"),
    (
        "import + Tracker(PlayFab)",
        "import playhooks; playhooks.Tracker([playhooks.PlayFab('ABCD', 'key')], spool_dir='spool').close(0.5)",
    ),
]
WHERE = "import playhooks, sys; sys.stdout.write(playhooks.__file__)"


def run_once(statement, environment, folder):
    """Wall seconds of a fresh interpreter running ``statement``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=environment, cwd=folder)
    return time.perf_counter() - start


def with_path(path, bytecode):
    """This environment, with ``path`` (when given) first on ``PYTHONPATH``, and compiled files
    written to and read from ``bytecode`` (when given)."""
    environment = dict(os.environ)
    if bytecode is not None:
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        environment["PYTHONPYCACHEPREFIX"] = bytecode
    if path is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [path, environment.get("PYTHONPATH")]))
    return environment


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 30")
    parser.add_argument("--rounds", type=int, help="rounds (each runs every statement once)")
    parser.add_argument("--compare", metavar="CHECKOUT", help="also time the playhooks of this folder, in the same rounds")
    parser.add_argument("--bytecode", action="store_true", help="compiled files for every module, as pip installs write them")
    arguments = parser.parse_args(argv)
    rounds = arguments.rounds or (5 if arguments.quick else 30)

    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as compiled:
        bytecode = compiled if arguments.bytecode else None
        rows = [(label, statement, with_path(None, bytecode)) for label, statement in STATEMENTS]
        if arguments.compare:
            other = with_path(os.path.abspath(arguments.compare), bytecode)
            rows += [(f"{label} [compare]", statement, other) for label, statement in STATEMENTS if "playhooks" in statement]
        samples = {label: [] for label, _, _ in rows}
        # Each row runs in a folder of its own: an empty one (so PYTHONPATH alone says which
        # playhooks is imported), where a tracker's spool stays that checkout's.
        folders = {label: os.path.join(folder, str(index)) for index, (label, _, _) in enumerate(rows)}
        for path in folders.values():
            os.mkdir(path)
        places = {
            label: subprocess.run(
                [sys.executable, "-c", WHERE], check=True, env=environment, cwd=folders[label], capture_output=True, text=True
            ).stdout
            for label, statement, environment in rows
            if statement.startswith("import playhooks") and "+" not in label
        }
        for label, statement, environment in rows:  # one untimed run each: compiled files written, caches warm
            run_once(statement, environment, folders[label])
        for round_ in range(rounds):
            # Rotate the order each round, so no statement always follows the same one.
            shift = round_ % len(rows)
            for label, statement, environment in rows[shift:] + rows[:shift]:
                samples[label].append(run_once(statement, environment, folders[label]))

    medians = {label: statistics.median(values) for label, values in samples.items()}
    start = medians["python (start only)"]
    attrs_cost = medians["import attrs"] - start
    if arguments.bytecode:
        compiling = "compiled files for every module (--bytecode)"
    elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
        compiling = "PYTHONDONTWRITEBYTECODE is set: playhooks compiled from source at every import"
    else:
        compiling = "compiled files as this environment writes them"
    print(f"Python {sys.version.split()[0]}, {rounds} rounds, medians of fresh interpreters; {compiling}")
    for label, path in places.items():
        print(f"  {label}: {path}")
    print(f"\n{'statement':34} {'wall':>9} {'- start':>9} {'x attrs':>8}   (milliseconds)")
    for label, _, _ in rows:
        cost = medians[label] - start
        ratio = "" if label == "python (start only)" else f"{cost / attrs_cost:7.2f}x"
        print(f"{label:34} {medians[label] * 1000:9.1f} {cost * 1000:9.1f} {ratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
