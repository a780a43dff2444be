"""The clients the report measures, behind one small interface: playhooks and four peers
(segment-analytics-python, posthog, mixpanel with its buffered consumer, amplitude-analytics).

Each peer is optional: ``available()`` names the ones installed and says why the others are not.
Every peer is pointed at a loopback server (``loopback_server.py``, in its own process) and
``guard_loopback()`` makes sure nothing in the process reaches further: a connection or a name
lookup for any host but the loopback raises, and is counted.

A client offers ``hook(name, body=None, playfab_id=None, character_id=None)`` (playhooks'
``on_character_event`` itself; for a peer, its "track an event" call), ``pending()``,
``drain(timeout)``, ``lost()`` (what the client said it dropped or failed to send, by reason) and
``close(timeout)``. For the memory figure, each client runs alone in a fresh interpreter::

    python tests/benchmarks/peers.py memory NAME URL COUNT    # prints one line of JSON
"""

import collections
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

LOOPBACK = ("127.0.0.1", "::1", "localhost")
HERE = os.path.dirname(os.path.abspath(__file__))

# name: (distribution, module to import, how its call is named in the report)
PEERS = {
    "segment": ("segment-analytics-python", "segment.analytics", "segment `track`"),
    "posthog": ("posthog", "posthog", "posthog `capture`"),
    "mixpanel": ("mixpanel", "mixpanel", "mixpanel `track` (buffered consumer)"),
    "amplitude": ("amplitude-analytics", "amplitude", "amplitude `track`"),
}

_outside = []  # (event, address) of every attempt to leave the loopback, refused


def guard_loopback():
    """Refuse, from now on in this process, every connection and name lookup that is not the loopback."""

    def audit(event, arguments):
        if event == "socket.connect":
            address = arguments[1]
            host = address[0] if isinstance(address, tuple) else None
        elif event == "socket.getaddrinfo":
            host = arguments[0]
            host = host.decode() if isinstance(host, bytes) else host
        else:
            return
        if host is not None and host not in LOOPBACK:
            _outside.append((event, host))
            raise PermissionError(f"benchmark: {event} to {host!r} refused (loopback only)")

    sys.addaudithook(audit)
    os.environ.pop("POSTHOG_CAPTURE_MODE", None)  # the peers read no settings from the environment here
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(name, None)


def outside_attempts():
    return list(_outside)


def version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def available():
    """(peer names installed, {peer name: why it is left out})."""
    found, missing = [], {}
    for name, (distribution, module, _) in PEERS.items():
        try:
            importlib.import_module(module)
        except ImportError as error:
            missing[name] = f"not installed (`pip install {distribution}`): {error}"
            continue
        found.append(name)
    return found, missing


def rss_mb(pid="self"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class LoopbackServer:
    """``loopback_server.py`` in a child process; ``counts()`` of what it received."""

    def __init__(self, *options):
        self.options = [str(option) for option in options]

    def __enter__(self):
        command = [sys.executable, os.path.join(HERE, "loopback_server.py"), "--port", "0", *self.options]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
        line = self.process.stdout.readline()
        found = re.search(r"http://\S+", line)
        if found is None:
            self.process.kill()
            raise RuntimeError(f"the loopback server did not start: {line!r}")
        self.url = found.group(0)
        return self

    def _call(self, method, path):
        request = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def counts(self):
        return self._call("GET", "/_counts")

    def received(self):
        return sum(self.counts()["events"].values())

    def reset(self):
        self._call("POST", "/_reset")

    def __exit__(self, *exc_info):
        from _support import end_process  # here, as elsewhere in this file: a memory probe runs it alone

        end_process(self.process)


def _wait(predicate, timeout, poll=0.005):
    # Not _support.wait_until: importing _support loads playhooks, which a peer's memory probe must not count.
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        time.sleep(poll)
    return True


def _in_thread(function, timeout):
    """Run ``function`` on a daemon thread, waiting at most ``timeout``: a peer's shutdown may block
    for as long as its own timeouts say."""
    thread = threading.Thread(target=function, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


class Client:
    name = ""
    label = ""

    def __init__(self):
        self.calls = 0
        self._lost = collections.Counter()

    def lost(self):
        return {reason: count for reason, count in self._lost.items() if count}

    def pending(self):
        return 0

    def drain(self, timeout):
        """Push out what is queued and wait for it, at most ``timeout``; what is still pending."""
        _wait(lambda: self.pending() == 0, timeout)
        return self.pending()


class Playhooks(Client):
    """playhooks, a PlayFab sink to the emulator: ``hook`` is ``Tracker.on_character_event`` itself."""

    name = "playhooks"
    label = "playhooks `on_character_event`"

    def __init__(self, url, spool_dir, **settings):
        super().__init__()
        import playhooks

        from _support import SECRET_KEY, TITLE_ID

        self.tracker = playhooks.Tracker([playhooks.PlayFab(TITLE_ID, SECRET_KEY, url)], spool_dir=spool_dir, **settings)
        self.hook = self.tracker.on_character_event

    def pending(self):
        stats = self.tracker.stats()
        settled = stats["confirmed_by_service"] + stats["refused_by_service"] + sum(stats["dropped"].values())
        return max(0, stats["accepted"] - settled)

    def drain(self, timeout):
        self.tracker.flush(timeout=timeout)
        return super().drain(min(timeout, 5))

    def lost(self):
        return {reason: count for reason, count in self.tracker.stats()["dropped"].items() if count}

    def close(self, timeout=5):
        self.tracker.close(timeout=timeout)


class Segment(Client):
    name = "segment"
    label = PEERS["segment"][2]

    def __init__(self, url, max_queue_size=10_000, timeout=15):
        super().__init__()
        from segment.analytics import Client as SegmentClient

        self.client = SegmentClient(
            "bench-write-key", host=url, on_error=self._error, max_queue_size=max_queue_size, timeout=timeout
        )

    def _error(self, error, batch):
        self._lost["send_error"] += len(batch)

    def hook(self, name, body=None, playfab_id=None, character_id=None):
        self.calls += 1
        accepted, _ = self.client.track(user_id=playfab_id or "player-1", event=name, properties=body)
        if not accepted:
            self._lost["queue_full"] += 1

    def pending(self):
        return self.client.queue.unfinished_tasks

    def close(self, timeout=5):
        _in_thread(self.client.shutdown, timeout)


class Posthog(Client):
    name = "posthog"
    label = PEERS["posthog"][2]

    def __init__(self, url, max_queue_size=10_000, timeout=15):
        super().__init__()
        from posthog import Posthog as PosthogClient

        # No personal API key: no feature-flag poller. Exception autocapture and metrics stay off (their defaults).
        self.client = PosthogClient(
            "phc_bench", host=url, on_error=self._error, max_queue_size=max_queue_size, timeout=timeout,
            disable_geoip=True, enable_exception_autocapture=False,
        )

    def _error(self, error, batch):
        self._lost["send_error"] += len(batch)

    def hook(self, name, body=None, playfab_id=None, character_id=None):
        self.calls += 1
        if self.client.capture(name, distinct_id=playfab_id or "player-1", properties=body) is None:
            self._lost["dropped_on_capture"] += 1

    def pending(self):
        queue = self.client._analytics_lane.queue
        return getattr(queue, "unfinished_tasks", queue.qsize())

    def drain(self, timeout):
        self.client.flush(timeout_seconds=timeout)
        return super().drain(min(timeout, 5))

    def close(self, timeout=5):
        _in_thread(self.client.shutdown, timeout)


class Mixpanel(Client):
    """mixpanel's ``BufferedConsumer``: every 50th call POSTs the buffer on the caller's thread."""

    name = "mixpanel"
    label = PEERS["mixpanel"][2]
    has_sender = False

    def __init__(self, url, request_timeout=15):
        super().__init__()
        import mixpanel

        self._error_type = mixpanel.MixpanelException
        self.consumer = mixpanel.BufferedConsumer(events_url=url + "/track", request_timeout=request_timeout)
        self.client = mixpanel.Mixpanel("bench-token", consumer=self.consumer)

    def hook(self, name, body=None, playfab_id=None, character_id=None):
        self.calls += 1
        try:
            self.client.track(playfab_id or "player-1", name, body)
        except self._error_type:
            # The buffer is kept and sent again with the next flush: a failure, not yet a loss.
            self._lost["send_error_raised"] += 1

    def pending(self):
        return len(self.consumer._buffers["events"])

    def drain(self, timeout):
        try:
            self.consumer.flush()
        except self._error_type:
            self._lost["send_error_raised"] += 1
        return self.pending()

    def close(self, timeout=5):
        _in_thread(self.consumer.flush, timeout)


class Amplitude(Client):
    """amplitude-analytics: its callback says, for every event, whether it was delivered."""

    name = "amplitude"
    label = PEERS["amplitude"][2]

    def __init__(self, url):
        super().__init__()
        import amplitude
        from amplitude import constants

        self._event = amplitude.BaseEvent
        self._settled = 0
        self._lock = threading.Lock()
        config = amplitude.Config(
            server_url=url + "/2/httpapi", callback=self._callback, event_log_level=constants.EventLogLevel.NONE
        )
        self.client = amplitude.Amplitude("bench-api-key", configuration=config)

    def _callback(self, event, code, message):
        with self._lock:
            self._settled += 1
            if not 200 <= code < 300:
                self._lost[f"status {code}"] += 1

    def hook(self, name, body=None, playfab_id=None, character_id=None):
        self.calls += 1
        self.client.track(self._event(event_type=name, user_id=playfab_id or "player-1", event_properties=body))

    def pending(self):
        return self.calls - self._settled

    def drain(self, timeout):
        self.client.flush()
        return super().drain(timeout)

    def close(self, timeout=5):
        _in_thread(self.client.shutdown, timeout)


FACTORIES = {"segment": Segment, "posthog": Posthog, "mixpanel": Mixpanel, "amplitude": Amplitude}

# A statement making each client as its wrapper above does, for the report's "ready" rows (the
# import and a client made, in a fresh interpreter); ``url`` is its service.
MAKE = {
    "playhooks": "import playhooks; playhooks.Tracker([playhooks.PlayFab('ABCD', 'key', {url!r})], spool_dir='spool')",
    "segment": "from segment.analytics import Client; Client('bench-write-key', host={url!r})",
    "posthog": (
        "from posthog import Posthog;"
        " Posthog('phc_bench', host={url!r}, disable_geoip=True, enable_exception_autocapture=False)"
    ),
    "mixpanel": "import mixpanel; mixpanel.Mixpanel('bench-token', consumer=mixpanel.BufferedConsumer(events_url={url!r} + '/track'))",
    "amplitude": "import amplitude; amplitude.Amplitude('bench-api-key', configuration=amplitude.Config(server_url={url!r} + '/2/httpapi'))",
}


# -- memory, in a fresh interpreter ---------------------------------------------------------------


def memory_child(name, url, count):
    """RSS after ``count`` events handed to client ``name`` whose service (``url``) never answers."""
    guard_loopback()
    sys.path.insert(0, HERE)
    import logging

    logging.disable(logging.CRITICAL)  # the stalled service makes every client complain
    folder = tempfile.mkdtemp(prefix="playhooks-bench-memory-")
    threads_start = threading.active_count()
    if name == "playhooks":
        import _support
        import playhooks

        rss_start = rss_mb()
        client = Playhooks(url, folder, read_timeout=600, retry=playhooks.RetryPolicy(base_delay=300))
    elif name == "mixpanel":
        rss_start = rss_mb()
        client = Mixpanel(url, request_timeout=2)
    else:
        importlib.import_module(PEERS[name][1])
        rss_start = rss_mb()
        # A bound of 10,000 would drop most of the 100k: raised so that all of them are held.
        client = FACTORIES[name](url, max_queue_size=count + 1000) if name in ("segment", "posthog") else FACTORIES[name](url)
    started = time.perf_counter()
    note, blocked = "", None
    body = {"level": 3, "coins": 120}
    player = {"playfab_id": "4F1C2A9B7D3E8A61", "character_id": "8D2E0F4B1A6C9E37"}
    if name == "playhooks":
        # A game emits over time: 5,000 at a time, each in the spool before the next.
        held = _support.fill_events(client.tracker, count, 5000)
    elif name == "mixpanel":
        for number in range(50):
            begin = time.perf_counter()
            client.hook("tick", body=body, **player)
            took = time.perf_counter() - begin
            blocked = took if blocked is None or took > blocked else blocked
        held = client.pending()
        note = f"the 50th call blocked the caller {blocked:.1f} s (its request_timeout, 2 s) and raised"
    else:
        for first in range(0, count, 5000):
            for number in range(first, min(count, first + 5000)):
                client.hook("tick", body={"n": number}, **player)
        held = client.pending()
    emitting = time.perf_counter() - started
    time.sleep(1.0)  # the clients' threads settle
    result = {
        "name": name,
        "rss_start_mb": rss_start,
        "rss_mb": rss_mb(),
        "threads_added": threading.active_count() - threads_start,
        "asked": count if name != "mixpanel" else 50,
        "held": held,
        "lost": client.lost(),
        "emitting_s": emitting,
        "note": note,
        "outside": outside_attempts(),
    }
    if name == "playhooks":
        result["spool_mb"] = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files) / 1e6
    print(json.dumps(result), flush=True)
    os._exit(0)  # no client's exit handler may wait on the stalled service


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 4 and argv[0] == "memory":
        memory_child(argv[1], argv[2], int(argv[3]))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
