"""The public surface: what `import playhooks` offers, and what it costs to import."""

import os
import subprocess
import sys
import sysconfig

import playhooks
import playhooks.testing


class TestExportedMembers:
    def test_all_is_pinned(self):
        """Adding or removing a public name is a deliberate change to this list."""
        assert [
            "ConfigurationError",
            "JsonlSink",
            "MemorySink",
            "Payload",
            "PayloadError",
            "PlayCamp",
            "PlayFab",
            "PlayhooksError",
            "RetryPolicy",
            "Session",
            "Settings",
            "Sink",
            "Tracker",
            "configure",
            "on_character_event",
            "on_session_end",
            "on_session_pause",
            "on_session_resume",
            "on_session_start",
            "reset",
        ] == playhooks.__all__

    def test_every_exported_name_exists_and_is_documented(self):
        """Each name in __all__ resolves and carries a docstring."""
        for name in playhooks.__all__:
            assert getattr(playhooks, name).__doc__, name

    def test_testing_helpers(self):
        """playhooks.testing ships the clock users need to test without sleeping."""
        assert ["ManualClock"] == playhooks.testing.__all__

    def test_relay(self):
        """playhooks.relay: the application, its configuration, and two ways to serve it."""
        import playhooks.relay

        assert ["Relay", "RelayConfig", "create_app", "load_config", "serve"] == playhooks.relay.__all__
        for name in playhooks.relay.__all__:
            assert getattr(playhooks.relay, name).__doc__, name


class TestErrors:
    def test_one_root(self):
        """Every playhooks exception is a PlayhooksError; input errors are also ValueErrors."""
        assert issubclass(playhooks.PayloadError, playhooks.PlayhooksError)
        assert issubclass(playhooks.PayloadError, ValueError)
        assert issubclass(playhooks.ConfigurationError, playhooks.PlayhooksError)
        assert issubclass(playhooks.ConfigurationError, ValueError)

    def test_payload_error_carries_field_and_rule(self):
        """Callers can read which field broke which rule without parsing the message."""
        error = playhooks.PayloadError("creator_key", "must match ^[A-Z0-9]{5}$", "ab")
        assert ("creator_key", "must match ^[A-Z0-9]{5}$", "creator_key: must match ^[A-Z0-9]{5}$ (got 'ab')") == (
            error.field,
            error.rule,
            str(error),
        )


def third_party_modules_after(code):
    """The modules from site-packages that `code` leaves loaded, in a fresh interpreter.

    Private ones (`_distutils_hack`, pip's editable-install finder) are the installer's, not ours.
    """
    script = (
        "import sys, sysconfig\n"
        f"{code}\n"
        "roots = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}\n"
        "names = set()\n"
        "for name, module in list(sys.modules.items()):\n"
        "    path = getattr(module, '__file__', None) or ''\n"
        "    if any(path.startswith(root) for root in roots) and not name.startswith(('playhooks', '_')):\n"
        "        names.add(name.split('.')[0])\n"
        "print(' '.join(sorted(names)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


class TestImportCost:
    def test_import_loads_only_attrs(self):
        """`import playhooks` loads attrs and the standard library, nothing else (not cattrs, not urllib3)."""
        assert third_party_modules_after("import playhooks") <= {"attr", "attrs"}

    def test_hooks_on_the_game_thread_load_nothing_more(self):
        """Starting a session and queueing an event does not pull cattrs onto the game's thread."""
        code = (
            "import playhooks\n"
            "t = playhooks.Tracker(flush_interval=3600)\n"
            "t.on_session_start('p', playfab_id='P', character_id='C')\n"
            "t.on_character_event('x', body={'a': 1})\n"
        )
        assert third_party_modules_after(code) <= {"attr", "attrs"}

    def test_the_worker_builds_payloads_without_cattrs(self):
        """The worker writes its two requests' JSON itself: cattrs is for reading JSON into models."""
        code = (
            "import playhooks, playhooks.testing\n"
            "clock, sink = playhooks.testing.ManualClock(), playhooks.MemorySink()\n"
            "t = playhooks.Tracker(sinks=[sink], clock=clock)\n"
            "t.on_session_start('p', playfab_id='P', character_id='C')\n"
            "t.on_character_event('x')\n"
            "clock.advance(90)\n"
            "t.on_session_end()\n"
            "assert t.flush(5) == 0 and len(sink.sessions) == len(sink.events) == 1\n"
        )
        assert third_party_modules_after(code) <= {"attr", "attrs"}

    def test_reading_json_into_models_loads_cattrs(self):
        """The emulator's way in, ``_wire.structure``, is where cattrs arrives."""
        code = "from playhooks import _models, _wire\n_wire.structure({'EventId': 'E'}, _models.CharacterEventResult)\n"
        assert "cattrs" in third_party_modules_after(code)


# What `import playhooks` leaves for later: each costs the game's start milliseconds, and none is
# needed before the first payload is built (on the worker) or the first answer read (by the
# sender or the emulator). Measured with tests/benchmarks/bench_import.py.
LOADED_LATER = [
    "cattrs",  # only to read JSON into models: the emulator, tests
    "hashlib",  # the default spool folder's name, when a delivery sink first needs it
    "logging",  # when something is first said
    "playhooks._payloads",  # a tracker with a delivery sink; else the worker's, at its first round
    "playhooks._sender",  # a tracker with a delivery sink
    "playhooks._spool",
    "playhooks._wire",  # as _payloads
    "playhooks.emulator",
    "random",
    "tempfile",  # the fallback spool folder, when the first cannot be written
    "urllib3",  # a tracker with a delivery sink
    "uuid",
]
MODELS_MADE_LATER = ["CharacterEvent", "PlaytimeSession", "PlayFabError", "BulkPlaytimeResult"]


class TestWhatImportLeavesForLater:
    def test_import_loads_none_of_them(self):
        """`import playhooks` imports none of the modules listed as loaded later, and makes no model class."""
        script = (
            "import sys\n"
            "import playhooks\n"
            f"print(' '.join(name for name in {LOADED_LATER!r} if name in sys.modules))\n"
            f"print(' '.join(name for name in {MODELS_MADE_LATER!r} if name in vars(sys.modules['playhooks._models'])))\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert ["", ""] == result.stdout.split("\n")[:2]

    def test_a_tracker_with_a_delivery_sink_loads_them_before_it_returns(self, tmp_path):
        """The models, urllib3 and the TLS roots load on the thread making the tracker, before any
        payload: loaded by its worker and sender instead, they raced a starved game's first events
        to the spool (the chaos soak lost them)."""
        script = (
            "import sys, playhooks\n"
            f"tracker = playhooks.Tracker([playhooks.PlayFab('ABCD', 'secret', 'http://127.0.0.1:9')], spool_dir={str(tmp_path)!r})\n"
            "from playhooks import _transport\n"
            "print(' '.join(name for name in ('urllib3', 'playhooks._payloads', 'playhooks._wire') if name in sys.modules))\n"
            "print(_transport._shared_ssl_context is not None)\n"
            "tracker.close(1)\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert ["urllib3 playhooks._payloads playhooks._wire", "True"] == result.stdout.split("\n")[:2]

    def test_a_model_is_made_when_first_asked_for(self):
        """The models exist, and are the same classes, however and wherever they are first asked for."""
        from playhooks import _models
        from playhooks._models import CharacterEvent

        assert CharacterEvent is _models.CharacterEvent is vars(_models)["CharacterEvent"]
        assert "CharacterEvent" == CharacterEvent.__qualname__


def test_no_package_metadata_is_read_at_run_time():
    """Inside Ren'Py no distribution is found, so the package must not ask for one."""
    package = os.path.dirname(playhooks.__file__)
    adapters = os.path.dirname(__import__("playhooks.adapters").adapters.__file__)
    offenders = []
    for root in {package, adapters}:
        for folder, _, files in os.walk(root):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    with open(path, encoding="utf-8") as source:
                        text = source.read()
                    if "importlib.metadata" in text or "importlib_metadata" in text or "pkg_resources" in text:
                        offenders.append(path)
    assert [] == offenders
    assert isinstance(playhooks.__version__, str)  # a literal in the package, not read from its metadata


def test_no_sqlite3_pygame_or_renpy_in_the_core():
    """The core imports none of the modules Ren'Py lacks or that belong to an engine."""
    code = "import playhooks, playhooks.testing, playhooks.adapters, playhooks._wire"
    script = f"{code}\nimport sys\nprint(' '.join(m for m in ('sqlite3', 'pygame', 'renpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "" == result.stdout.strip()


def test_purelib_is_where_site_packages_live():
    """Guards the import-cost tests: they look for third-party modules under these paths."""
    assert os.path.isdir(sysconfig.get_paths()["purelib"])
