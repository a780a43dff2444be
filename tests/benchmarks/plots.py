"""The report's figures, drawn with matplotlib when it is installed (each function returns the PNG's
file name, or None when matplotlib is missing: the report then says so instead of showing it)."""

import importlib.util
import os

COLOURS = {
    "playhooks": "#1b9e77",
    "segment": "#d95f02",
    "posthog": "#7570b3",
    "mixpanel": "#e7298a",
    "amplitude": "#66a61e",
    "floor": "#999999",
    "empty": "#cccccc",
    "without telemetry": "#333333",
    "bare urllib3": "#999999",
}


def available():
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def _exceedance(axes, values, label, scale=1.0):
    """The share of samples above each value, on log scales: the tail, which the median hides."""
    ordered = sorted(value * scale for value in values)
    count = len(ordered)
    shares = [(count - index) / count for index in range(count)]
    axes.step(ordered, shares, where="post", label=label, color=COLOURS.get(label.split(" ")[0]), linewidth=1.3)


def _save(figure, folder, name):
    path = os.path.join(folder, name)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return name


def hook_latency(samples, folder):
    """``samples``: {phase: {client: [nanoseconds]}}. One panel per phase."""
    if not available():
        return None
    pyplot = _pyplot()
    figure, panels = pyplot.subplots(1, len(samples), figsize=(6 * len(samples), 4.2), sharey=True)
    panels = panels if len(samples) > 1 else [panels]
    for axes, (phase, rows) in zip(panels, samples.items()):
        for name, values in rows.items():
            _exceedance(axes, values, name, scale=1e-3)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("microseconds on the caller's thread, per call")
        axes.set_title(f"hook cost, senders {phase}")
        axes.grid(True, which="both", alpha=0.3)
    panels[0].set_ylabel("share of calls slower than x")
    panels[-1].legend(fontsize=8)
    return _save(figure, folder, "hook-latency.png")


def frame_times(rows, folder):
    """``rows``: {config: (frame seconds, wake-late seconds)}."""
    if not available():
        return None
    pyplot = _pyplot()
    figure, (work, late) = pyplot.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for name, (frames, lates) in rows.items():
        _exceedance(work, frames, name, scale=1e3)
        if lates:
            _exceedance(late, lates, name, scale=1e3)
    for axes, title in ((work, "frame time (the frame's work, 10 events included)"), (late, "wake-up late from the frame's sleep")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("milliseconds")
        axes.set_title(title, fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
    work.set_ylabel("share of frames above x")
    late.legend(fontsize=8)
    return _save(figure, folder, "frame-times.png")


def memory_and_import(memory, imports, folder):
    """``memory``: {client: RSS MB or None}; ``imports``: {label: milliseconds}."""
    if not available():
        return None
    pyplot = _pyplot()
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.2))
    names = [name for name, value in memory.items() if value is not None]
    left.bar(names, [memory[name] for name in names], color=[COLOURS.get(name, "#777777") for name in names])
    left.set_ylabel("MB")
    left.set_title("RSS with 100k events pending against a stalled server", fontsize=10)
    labels = list(imports)
    right.bar(labels, [imports[label] for label in labels], color=[COLOURS.get(label, "#777777") for label in labels])
    right.set_ylabel("ms (interpreter start subtracted)")
    right.set_title("import time, median of fresh interpreters", fontsize=10)
    for axes in (left, right):
        axes.tick_params(axis="x", labelrotation=20)
        axes.grid(True, axis="y", alpha=0.3)
    return _save(figure, folder, "memory-import.png")


def throughput(rows, columns, folder):
    """``rows``: {label: {column: per second}}, one group of bars per label."""
    if not available():
        return None
    pyplot = _pyplot()
    figure, panels = pyplot.subplots(1, len(columns), figsize=(6 * len(columns), 4.6))
    panels = panels if len(columns) > 1 else [panels]
    for axes, column in zip(panels, columns):
        labels = [label for label in rows if rows[label].get(column)]
        values = [rows[label][column] for label in labels]
        colours = [COLOURS["playhooks"] if "playhooks" in label else COLOURS["bare urllib3"] for label in labels]
        axes.barh(labels, values, color=colours)
        axes.set_xscale("log")
        axes.set_xlabel("per second (log scale)")
        axes.set_title(f"delivery to the emulator, {column}", fontsize=10)
        axes.invert_yaxis()
        axes.grid(True, axis="x", which="both", alpha=0.3)
        axes.tick_params(axis="y", labelsize=8)
    return _save(figure, folder, "throughput.png")
