"""The relay's TOML configuration: what it takes, and errors that name the key to fix."""

import signal

import pytest

from playhooks import ConfigurationError
from playhooks._cli import main
from playhooks.relay import load_config

from helpers import wait_for
from relay_support import EVENTS_ONLY_KEY, INGEST_KEY, SECRETS, SESSIONS, RelayProcess, post, session, write_config

ENV = {"PC": "key-1:a-playcamp-secret", "PF": "APLAYFABSECRET"}
MINIMAL = """
[playcamp]
api_key_env = "PC"
[playfab]
title_id = "ABCD"
secret_key_env = "PF"
[[ingest_keys]]
key = "ik_coinrush_1"
game = "coin-rush"
services = ["playcamp", "playfab"]
"""


def load(tmp_path, text, environ=ENV):
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return load_config(str(path), environ)


class TestReading:
    def test_the_issues_example_reads_with_the_services_defaults(self, tmp_path):
        config = load(tmp_path, MINIMAL)
        assert config.upstreams["playcamp"].url == "https://sdk-api.playcamp.io"
        assert config.upstreams["playfab"].url == "https://abcd.playfabapi.com"
        assert config.key(INGEST_KEY).services == {"playcamp", "playfab"}
        assert config.key("ik_coinrush_2") is None
        assert config.redis is None

    def test_secrets_come_from_the_environment_and_show_in_no_repr(self, tmp_path):
        config = load(tmp_path, MINIMAL)
        assert config.upstreams["playcamp"].secret == ENV["PC"]
        assert ENV["PC"] not in repr(config) and ENV["PF"] not in repr(config)
        assert INGEST_KEY not in repr(config)  # keys are held by their digest

    @pytest.mark.parametrize(
        "text, named",
        [
            (MINIMAL.replace('api_key_env = "PC"', 'api_key_env = "UNSET_VARIABLE"'), "[playcamp] api_key_env: the variable UNSET_VARIABLE"),
            (MINIMAL.replace('title_id = "ABCD"\n', ""), "[playfab] title_id: is required"),
            (MINIMAL.replace('services = ["playcamp", "playfab"]', 'services = ["steam"]'), "services: must list"),
            (MINIMAL.replace('key = "ik_coinrush_1"', 'key = "short"'), "key: must be 8 or more"),
            (MINIMAL + '[limits]\nmax_body_bytes = -1\n', "[limits] max_body_bytes"),
            (MINIMAL + '[limits]\nuser_id_pattern = "("\n', "[limits] user_id_pattern: not a regular expression"),
            (MINIMAL + '[limits]\nmax_sessions = 3\n', "[limits]: unknown keys max_sessions"),
            (MINIMAL + "[extra]\n", "the top level: unknown keys extra"),
            ("[playcamp\n", "is not valid TOML"),
            ("", "configure [playcamp], [playfab] or both"),
            (MINIMAL.split("[playfab]")[0] + '[[ingest_keys]]\nkey = "ik_events_1"\ngame = "g"\nservices = ["playfab"]\n', "playfab is not configured"),
        ],
    )
    def test_each_mistake_names_the_key_and_never_a_secret(self, tmp_path, text, named):
        with pytest.raises(ConfigurationError) as caught:
            load(tmp_path, text)
        assert named in str(caught.value)
        assert not any(secret in str(caught.value) for secret in ENV.values())

    def test_a_missing_file_is_a_configuration_error(self, tmp_path):
        with pytest.raises(ConfigurationError, match="cannot be read"):
            load_config(str(tmp_path / "nowhere.toml"))


class TestCommand:
    def test_check_says_what_the_config_forwards(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("PC", ENV["PC"])
        monkeypatch.setenv("PF", ENV["PF"])
        (tmp_path / "relay.toml").write_text(MINIMAL)
        assert main(["relay", "--config", str(tmp_path / "relay.toml"), "--check"]) == 0
        assert "forwards to playcamp, playfab; 1 ingest key(s)" in capsys.readouterr().out

    def test_a_broken_config_exits_1_with_the_reason(self, tmp_path, capsys):
        (tmp_path / "relay.toml").write_text(MINIMAL)
        assert main(["relay", "--config", str(tmp_path / "relay.toml"), "--check"]) == 1
        assert "the variable PC is not set" in capsys.readouterr().err

    def test_sighup_reloads_the_keys_of_a_running_relay(self, tmp_path, emulator):
        config = write_config(tmp_path / "relay.toml", emulator.url)
        relay = RelayProcess(config, tmp_path / "spool")
        try:
            assert post(relay.url, SESSIONS, session()).status == 202
            # Revoked in the file, the relay told at once (it would notice the change by itself too).
            write_config(tmp_path / "relay.toml", emulator.url, keys=[(EVENTS_ONLY_KEY, ["playfab"])])
            relay.process.send_signal(signal.SIGHUP)
            assert wait_for(lambda: post(relay.url, SESSIONS, session()).status == 401, 10)
            assert relay.stop() == 0
            assert "config reloaded" in relay.log()
            assert not any(secret in relay.log() for secret in (*SECRETS, INGEST_KEY, EVENTS_ONLY_KEY))
        finally:
            relay.stop()


class TestSample:
    def test_the_documented_sample_is_a_usable_config_with_every_default(self, tmp_path):
        """samples/relay.toml lists every key with its default: read as is, it is the defaults."""
        from playhooks.relay._config import Limits, RelayConfig

        from helpers import ROOT

        config = load_config(f"{ROOT}/samples/relay.toml", {"PLAYCAMP_API_KEY": ENV["PC"], "PLAYFAB_SECRET_KEY": ENV["PF"]})
        assert config.limits == Limits()
        defaults = RelayConfig(path="", upstreams={}, keys={}, limits=Limits())
        for field in ("max_spool_records", "max_spool_bytes", "max_in_flight", "connect_timeout", "read_timeout", "retry"):
            assert getattr(config, field) == getattr(defaults, field), field
