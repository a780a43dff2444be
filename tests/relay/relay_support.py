"""What the relay's tests share: a config file, the relay served by real servers, requests, metrics."""

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import urllib3

PLAYCAMP_SECRET = "key-1:relay-only-playcamp-secret"
PLAYFAB_SECRET = "RELAYONLYPLAYFABSECRET42"
SECRETS = (PLAYCAMP_SECRET, PLAYFAB_SECRET, "relay-only-playcamp-secret")
SECRET_ENV = {"RELAY_TEST_PLAYCAMP_KEY": PLAYCAMP_SECRET, "RELAY_TEST_PLAYFAB_KEY": PLAYFAB_SECRET}
INGEST_KEY = "ik_coinrush_1"
EVENTS_ONLY_KEY = "ik_events_only_1"
PLAYER = {"playfab_id": "4F1C2A9B7D3E8A61", "character_id": "8D2E0F4B1A6C9E37"}
SESSIONS = "/v1/server/playtime/sessions"
BULK = "/v1/server/playtime/sessions/bulk"
EVENT = "/Server/WriteCharacterEvent"
_http = urllib3.PoolManager(maxsize=16, retries=False, timeout=urllib3.Timeout(connect=5, read=30))


def write_config(path, upstream_url, *, limits="", extra="", keys=None, upstreams=("playcamp", "playfab")):
    """A relay config forwarding ``upstreams`` (both services) to ``upstream_url`` (the emulator)."""
    if keys is None:
        keys = [(INGEST_KEY, ["playcamp", "playfab"]), (EVENTS_ONLY_KEY, ["playfab"])]
    text = ""
    if "playcamp" in upstreams:
        text += f'\n[playcamp]\nurl = "{upstream_url}"\napi_key_env = "RELAY_TEST_PLAYCAMP_KEY"\n'
    if "playfab" in upstreams:
        text += f'\n[playfab]\ntitle_id = "ABCD"\nurl = "{upstream_url}"\nsecret_key_env = "RELAY_TEST_PLAYFAB_KEY"\n'
    text += """
[upstream]
retry_base_delay = 0.05
retry_max_delay = 0.2
max_attempts = 10000
"""
    for key, services in keys:
        text += f'\n[[ingest_keys]]\nkey = "{key}"\ngame = "coin-rush"\nservices = {json.dumps(services)}\n'
    if limits:
        text += "\n[limits]\n" + limits + "\n"
    text += extra
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return str(path)


def now_text(offset=0.0):
    moment = datetime.now(timezone.utc) + timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def session(user="player-1", seconds=30, **fields):
    data = {
        "sessionId": str(uuid.uuid4()),
        "userId": user,
        "durationSeconds": seconds,
        "startedAt": now_text(-seconds),
        "endedAt": now_text(),
    }
    data.update(fields)
    return data


def event(name="level_completed", playfab_id=PLAYER["playfab_id"], **fields):
    data = {
        "CharacterId": PLAYER["character_id"],
        "EventName": name,
        "PlayFabId": playfab_id,
        "Body": {"level": 3, "playhooks_event_id": uuid.uuid4().hex},
        "Timestamp": now_text(),
    }
    data.update(fields)
    return data


def post(url, path, body, key=INGEST_KEY, content_type="application/json", headers=None):
    """POST ``body`` (JSON unless bytes) to the relay; the answer, its body decoded if JSON."""
    sent = {"Content-Type": content_type} if content_type else {}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    sent.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = _http.request("POST", url + path, body=data, headers=sent)
    try:
        response.json_body = json.loads(response.data) if response.data else None
    except ValueError:
        response.json_body = None
    return response


def get(url, path):
    return _http.request("GET", url + path)


def metrics(url):
    """The relay's /metrics, parsed by Prometheus' own parser: {(name, labels...): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = get(url, "/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = {}
    for family in text_string_to_metric_families(response.data.decode("utf-8")):
        for sample in family.samples:
            values[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return values


def rejected(values, reason, service="playcamp"):
    return values.get(("playhooks_relay_rejected_total", ("reason", reason), ("service", service)), 0)


def accepted(values, service):
    return values.get(("playhooks_relay_accepted_total", ("service", service)), 0)


class RelayProcess:
    """``playhooks relay`` (waitress) or gunicorn serving the relay, in a process of its own."""

    def __init__(self, config, spool_dir, server="waitress", workers=2, env=None):
        environment = {**os.environ, **SECRET_ENV, **(env or {})}
        if server == "waitress":
            command = [sys.executable, "-m", "playhooks", "relay", "--config", str(config), "--port", "0", "--spool-dir", str(spool_dir)]
        else:
            port = free_port()
            environment.update(PLAYHOOKS_RELAY_CONFIG=str(config), PLAYHOOKS_RELAY_SPOOL_DIR=str(spool_dir))
            command = [
                os.path.join(os.path.dirname(sys.executable), "gunicorn"),
                "-k", "gthread", "-w", str(workers), "--threads", "4", "-b", f"127.0.0.1:{port}",
                "--graceful-timeout", "5", "playhooks.relay:create_app()",
            ]
            self.url = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(str(spool_dir) + "-relay.log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, env=environment)
        if server == "waitress":
            line = self.process.stdout.readline().decode()
            match = re.search(r"serving on (http://\S+)", line)
            assert match, f"the relay did not start: {line!r} {self.log()}"
            self.url = match.group(1)
        else:
            self._wait_ready()

    def _wait_ready(self):
        from helpers import wait_for

        def ready():
            try:
                return get(self.url, "/livez").status == 200
            except urllib3.exceptions.HTTPError:
                return False

        assert wait_for(ready, 30), f"gunicorn did not start: {self.log()}"

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as file:
            return file.read().decode("utf-8", "replace")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close()

    def _close(self):
        self._log.close()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def stop(self, timeout=15):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._close()
        return self.process.returncode


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
