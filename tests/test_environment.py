"""``Tracker.from_env``: the PLAYHOOKS_* variables, and what it says when they are missing or wrong."""

import logging

import pytest

import playhooks

SECRET = "TOPSECRET"
PLAYCAMP = {"PLAYHOOKS_PLAYCAMP_API_KEY": "k:s", "PLAYHOOKS_PLAYCAMP_URL": "http://127.0.0.1:9"}
PLAYFAB = {
    "PLAYHOOKS_PLAYFAB_TITLE_ID": "ABCD",
    "PLAYHOOKS_PLAYFAB_SECRET_KEY": "secret",
    "PLAYHOOKS_PLAYFAB_URL": "http://127.0.0.1:9",
}


def refusal(environ):
    with pytest.raises(playhooks.ConfigurationError) as caught:
        playhooks.Tracker.from_env(environ=environ)
    return caught.value


class TestSinks:
    def test_the_variables_choose_the_sinks_and_the_spool(self, tmp_path):
        """PLAYHOOKS_* variables pick the sinks and the spool."""
        tracker = playhooks.Tracker.from_env(environ={**PLAYCAMP, **PLAYFAB, "PLAYHOOKS_SPOOL_DIR": str(tmp_path)})
        tracker.close(timeout=0.1)

        assert ["PlayCamp", "PlayFab"] == [type(sink).__name__ for sink in tracker.sinks]
        assert str(tmp_path) == tracker.settings.spool_dir

    @pytest.mark.parametrize("environ", [{}, dict.fromkeys({**PLAYCAMP, **PLAYFAB}, "")], ids=["unset", "empty"])
    def test_with_no_sink_it_warns_once_naming_the_variables(self, environ, caplog):
        """A tracker that would drop everything says so, and what to set; it still works."""
        with caplog.at_level(logging.WARNING, logger="playhooks"):
            tracker = playhooks.Tracker.from_env(environ=environ)
            playhooks.Tracker.from_env([playhooks.MemorySink()], environ=environ).close(timeout=1)
        [warning] = caplog.messages
        tracker.on_session_start("player-1")

        assert 0 == tracker.close(timeout=1)
        assert [] == tracker.sinks
        for variable in ("PLAYHOOKS_PLAYCAMP_API_KEY", "PLAYHOOKS_PLAYFAB_TITLE_ID", "PLAYHOOKS_PLAYFAB_SECRET_KEY"):
            assert variable in warning

    def test_an_empty_variable_counts_as_unset(self):
        """``PLAYHOOKS_PLAYCAMP_API_KEY=`` is no key: the URL beside it has none."""
        error = refusal({**PLAYCAMP, "PLAYHOOKS_PLAYCAMP_API_KEY": ""})

        assert "PLAYHOOKS_PLAYCAMP_URL is set without PLAYHOOKS_PLAYCAMP_API_KEY: set the key too" == str(error)


class TestErrors:
    def test_playfab_needs_both_its_settings(self):
        """A title id without its secret (or the reverse) is refused, not silently ignored."""
        with pytest.raises(playhooks.ConfigurationError, match="go together"):
            playhooks.Tracker.from_env(environ={"PLAYHOOKS_PLAYFAB_TITLE_ID": "ABCD"})

    @pytest.mark.parametrize(
        "url, keys",
        [
            ("PLAYHOOKS_PLAYCAMP_URL", ["PLAYHOOKS_PLAYCAMP_API_KEY"]),
            ("PLAYHOOKS_PLAYFAB_URL", ["PLAYHOOKS_PLAYFAB_TITLE_ID", "PLAYHOOKS_PLAYFAB_SECRET_KEY"]),
        ],
        ids=["playcamp", "playfab"],
    )
    def test_a_url_without_its_key_is_refused(self, url, keys):
        """A URL alone is a setup half done: it would otherwise be ignored without a word."""
        message = str(refusal({url: "http://127.0.0.1:9"}))

        assert [url, *keys] == [variable for variable in [url, *keys] if variable in message]

    @pytest.mark.parametrize(
        "variable, value, rule",
        [
            ("PLAYHOOKS_PLAYCAMP_API_KEY", SECRET, "must be a PlayCamp server key, 'keyId:secret'"),
            ("PLAYHOOKS_PLAYCAMP_API_KEY", f"key:{SECRET} ", "must be a PlayCamp server key, 'keyId:secret'"),
            ("PLAYHOOKS_PLAYFAB_SECRET_KEY", f"{SECRET}\n", "must be the title's secret key"),
            ("PLAYHOOKS_PLAYFAB_TITLE_ID", f"{SECRET}-1", "must be the title's id"),
        ],
        ids=["no-colon", "space", "newline", "title-id"],
    )
    def test_a_malformed_value_is_named_by_its_variable_never_shown(self, variable, value, rule):
        """The error says which variable to fix and how, and keeps the value (a secret) out."""
        error = refusal({**PLAYCAMP, **PLAYFAB, variable: value})

        assert str(error).startswith(f"{variable}: {rule}")
        assert SECRET not in f"{error} {error!r} {error.args}"

    @pytest.mark.parametrize(
        "variable, url, endpoint",
        [
            ("PLAYHOOKS_PLAYCAMP_URL", "https://sdk-api.playcamp.io/v1/server/playtime/sessions", "/v1/server/playtime/sessions"),
            ("PLAYHOOKS_PLAYFAB_URL", "https://abcd.playfabapi.com/Server/WriteCharacterEvent", "/Server/WriteCharacterEvent"),
        ],
        ids=["playcamp", "playfab"],
    )
    def test_an_endpoint_s_path_in_a_url_is_caught_at_start(self, variable, url, endpoint):
        """A URL pasted from the API's documentation would send everything to a 404."""
        error = refusal({**PLAYCAMP, **PLAYFAB, variable: url})

        assert str(error).startswith(f"{variable}: must be the base URL, without the endpoint's path {endpoint}")
