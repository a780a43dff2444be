"""The Tracker's hooks: what they send, and how strict and lenient modes treat bad input."""

import json
import logging
from datetime import datetime, timezone

import attrs
import pytest

import playhooks

PLAYER = {"playfab_id": "4F1C2A9B7D3E8A61", "character_id": "8D2E0F4B1A6C9E37"}


def flushed(tracker):
    assert 0 == tracker.flush(timeout=5)
    return tracker


class TestCharacterEvents:
    def test_event_takes_ids_from_the_session(self, tracker, sink, clock):
        """With one open session, an event needs only its name; the ids come from the session."""
        tracker.on_session_start("p1", **PLAYER)
        clock.advance(3)
        tracker.on_character_event("level_completed", body={"level": 3})
        flushed(tracker)

        [event] = sink.events
        event_id = event["Body"].pop("playhooks_event_id")
        assert {
            "CharacterId": "8D2E0F4B1A6C9E37",
            "EventName": "level_completed",
            "PlayFabId": "4F1C2A9B7D3E8A61",
            "Body": {"level": 3},
            "Timestamp": "2024-01-15T10:30:03.000Z",
        } == event
        assert 32 == len(event_id)

    def test_explicit_ids_win_over_the_session(self, tracker, sink):
        """Ids passed to the hook replace the session's defaults."""
        tracker.on_session_start("p1", **PLAYER)
        tracker.on_character_event("x", character_id="other", playfab_id="someone")
        flushed(tracker)

        assert ("other", "someone") == (sink.events[0]["CharacterId"], sink.events[0]["PlayFabId"])

    def test_event_without_a_session(self, tracker, sink):
        """A game server can send events with explicit ids and no session at all."""
        tracker.on_character_event("boss_defeated", **PLAYER, custom_tags={"build": "1.2"})
        flushed(tracker)

        assert {"build": "1.2"} == sink.events[0]["CustomTags"]

    def test_given_timestamp_is_kept(self, tracker, sink):
        """A timestamp the caller gives is sent as is, in UTC."""
        moment = datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
        tracker.on_character_event("x", **PLAYER, timestamp=moment)
        flushed(tracker)

        assert "2024-03-01T12:00:00.250Z" == sink.events[0]["Timestamp"]

    def test_the_call_time_is_sent_even_if_delivered_later(self, tracker, sink, clock):
        """The Timestamp is when the hook was called, not when the worker got to it."""
        tracker.on_character_event("x", **PLAYER)
        clock.advance(3600)
        flushed(tracker)

        assert "2024-01-15T10:30:00.000Z" == sink.events[0]["Timestamp"]

    def test_body_is_copied_at_the_call(self, tracker, sink):
        """A game that reuses its dict after the call does not change what was sent."""
        body = {"coins": 1}
        tracker.on_character_event("coin_collected", **PLAYER, body=body)
        body["coins"] = 2
        flushed(tracker)

        assert 1 == sink.events[0]["Body"]["coins"]

    def test_nested_body_values_are_copied_too(self, tracker, sink):
        """A list inside the body, changed after the call, is sent as it was at the call."""
        inventory = ["sword"]
        tags = {"build": "1.0"}
        tracker.on_character_event("item_found", **PLAYER, body={"inventory": inventory}, custom_tags=tags)
        inventory.append("shield")
        tags["build"] = "2.0"
        flushed(tracker)

        assert (["sword"], "1.0") == (sink.events[0]["Body"]["inventory"], sink.events[0]["CustomTags"]["build"])

    def test_each_event_gets_its_own_id(self, tracker, sink):
        """The client event id lets duplicates be removed downstream: it must be unique."""
        for _ in range(100):
            tracker.on_character_event("tick", **PLAYER)
        flushed(tracker)

        assert 100 == len({event["Body"]["playhooks_event_id"] for event in sink.events})

    def test_events_keep_their_order(self, tracker, sink):
        """Events reach the sink in the order the game sent them."""
        for number in range(300):
            tracker.on_character_event("tick", **PLAYER, body={"n": number})
        flushed(tracker)

        assert list(range(300)) == [event["Body"]["n"] for event in sink.events]


BAD_EVENTS = [
    pytest.param({"event_name": "level completed"}, "event_name", id="space-in-name"),
    pytest.param({"event_name": "x" * 65}, "event_name", id="name-too-long"),
    pytest.param({"body": {"x": float("nan")}}, "body", id="nan-in-body"),
    pytest.param({"body": {"x": object()}}, "body", id="object-in-body"),
    pytest.param({"body": {"blob": "x" * 20000}}, "body", id="body-too-large"),
    pytest.param({"body": ["a", "b"]}, "body", id="body-not-a-mapping"),
    pytest.param({"body": {"playhooks_event_id": "mine"}}, "body", id="reserved-body-key"),
    pytest.param({"character_id": None}, "character_id", id="no-character"),
    pytest.param({"playfab_id": ""}, "playfab_id", id="empty-playfab-id"),
    pytest.param({"custom_tags": {"build": 12}}, "custom_tags", id="tag-not-a-string"),
    pytest.param({"timestamp": datetime(2024, 1, 1)}, "timestamp", id="naive-timestamp"),
    pytest.param({"session": "not-a-session"}, "session", id="session-not-a-handle"),
]


def event_arguments(changes):
    arguments = {"event_name": "level_completed", "playfab_id": "P", "character_id": "C", "body": {"level": 1}}
    arguments.update(changes)
    return arguments.pop("event_name"), arguments


class TestStrictMode:
    @pytest.mark.parametrize(("changes", "field"), BAD_EVENTS)
    def test_bad_event_raises_naming_the_field(self, strict_tracker, sink, changes, field):
        """Strict mode raises PayloadError (a ValueError) on the caller, naming the field."""
        name, arguments = event_arguments(changes)
        with pytest.raises(playhooks.PayloadError) as caught:
            strict_tracker.on_character_event(name, **arguments)

        assert field == caught.value.field
        assert isinstance(caught.value, ValueError)
        assert str(caught.value).startswith(f"{field}: ")

    def test_bad_event_loses_nothing_already_accepted(self, strict_tracker, sink):
        """A rejected call leaves the events before and after it intact."""
        strict_tracker.on_character_event("first", playfab_id="P", character_id="C")
        with pytest.raises(playhooks.PayloadError):
            strict_tracker.on_character_event("bad name", playfab_id="P", character_id="C")
        strict_tracker.on_character_event("second", playfab_id="P", character_id="C")
        flushed(strict_tracker)

        assert ["first", "second"] == [event["EventName"] for event in sink.events]

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"creator_key": "ab12c"}, "creator_key"),
            ({"platform": "PC"}, "platform"),
            ({"metadata": {"x": {1, 2}}}, "metadata"),
            ({"is_test": "yes"}, "is_test"),
            ({"campaign_id": ""}, "campaign_id"),
            ({"callback_id": 7}, "callback_id"),
        ],
    )
    def test_bad_session_option_raises(self, strict_tracker, options, field):
        """Session options are checked when the session starts."""
        with pytest.raises(playhooks.PayloadError) as caught:
            strict_tracker.on_session_start("p1", **options)

        assert field == caught.value.field

    @pytest.mark.parametrize("user_id", ["", None, 42])
    def test_bad_user_id_raises(self, strict_tracker, user_id):
        """A session needs a non-empty string user id."""
        with pytest.raises(playhooks.PayloadError, match="user_id: must be a non-empty string"):
            strict_tracker.on_session_start(user_id)

    def test_hooks_after_close_raise(self, strict_tracker):
        """A strict tracker says so when it is used after close()."""
        strict_tracker.close(timeout=5)

        with pytest.raises(playhooks.PlayhooksError, match="closed"):
            strict_tracker.on_character_event("x", playfab_id="P", character_id="C")


class TestLenientMode:
    @pytest.mark.parametrize(("changes", "field"), BAD_EVENTS)
    def test_bad_event_is_logged_and_counted(self, tracker, sink, caplog, changes, field):
        """The default mode never raises: the worker logs the field and rule and counts the drop."""
        name, arguments = event_arguments(changes)
        with caplog.at_level(logging.WARNING, logger="playhooks"):
            tracker.on_character_event(name, **arguments)
            tracker.on_character_event("good", playfab_id="P", character_id="C")
            flushed(tracker)

        assert ["good"] == [event["EventName"] for event in sink.events]
        assert {"invalid_event": 1} == tracker.stats()["dropped"]
        assert f"invalid_event: {field}: " in caplog.text

    def test_bad_session_options_drop_the_session(self, tracker, sink, caplog, clock):
        """A session with a bad option is not tracked: None comes back, and the drop is counted."""
        with caplog.at_level(logging.WARNING, logger="playhooks"):
            assert tracker.on_session_start("p1", creator_key="lower") is None
        clock.advance(10)
        tracker.on_session_end()
        flushed(tracker)

        assert [] == sink.sessions
        assert {"invalid_session": 1} == tracker.stats()["dropped"]
        assert "creator_key: must be 5 uppercase letters or digits" in caplog.text

    def test_repeated_drops_warn_once(self, tracker, caplog):
        """A bad event sent every frame logs one warning, not thousands; every drop is counted."""
        with caplog.at_level(logging.WARNING, logger="playhooks"):
            for _ in range(50):
                tracker.on_character_event("bad name", playfab_id="P", character_id="C")
            flushed(tracker)

        assert 1 == len(caplog.records)
        assert {"invalid_event": 50} == tracker.stats()["dropped"]

    def test_ambiguous_session_is_logged_not_raised(self, tracker, caplog):
        """Ending with session=None while two are open is ignored with a warning."""
        tracker.on_session_start("a")
        tracker.on_session_start("b")
        with caplog.at_level(logging.WARNING, logger="playhooks"):
            tracker.on_session_end()

        assert 2 == tracker.stats()["open_sessions"]
        assert "session: is required: 2 sessions are open" in caplog.text

    def test_hooks_after_close_are_counted(self, tracker):
        """After close() hooks do nothing but count what they were given."""
        tracker.close(timeout=5)
        tracker.on_character_event("x", playfab_id="P", character_id="C")
        assert tracker.on_session_start("p1") is None

        assert {"tracker_closed": 2} == tracker.stats()["dropped"]


class TestBounds:
    def test_a_full_queue_drops_new_events_but_keeps_sessions(self, sink, clock):
        """Past max_queue, events are dropped and counted; session ends still go through."""
        tracker = playhooks.Tracker(sinks=[sink], clock=clock, max_queue=10, flush_interval=60)
        tracker.on_session_start("p1", **PLAYER)
        for _ in range(15):
            tracker.on_character_event("tick")
        clock.advance(5)
        tracker.on_session_end()
        assert 0 == tracker.close(timeout=5)

        assert (10, 1) == (len(sink.events), len(sink.sessions))
        assert {"queue_full": 5} == tracker.stats()["dropped"]


class TestSinks:
    def test_every_sink_gets_every_payload(self, clock):
        """Payloads fan out to all sinks that take their kind."""
        first, second = playhooks.MemorySink(), playhooks.MemorySink()
        with playhooks.Tracker(sinks=[first, second], clock=clock) as tracker:
            tracker.on_session_start("p1", **PLAYER)
            tracker.on_character_event("x")
            clock.advance(2)
            tracker.on_session_end()
            flushed(tracker)

        assert (first.sessions, first.events) == (second.sessions, second.events)
        assert (1, 1) == (len(first.sessions), len(first.events))

    def test_a_callable_is_a_sink(self, clock):
        """Any callable taking a Payload works as a sink."""
        received = []
        with playhooks.Tracker(sinks=[received.append], clock=clock) as tracker:
            session = tracker.on_session_start("p1")
            clock.advance(2)
            tracker.on_session_end()
            flushed(tracker)

        [payload] = received
        assert ("session", session.id, session.id) == (payload.kind, payload.key, payload.data["sessionId"])

    def test_a_sink_that_takes_only_sessions(self, clock):
        """A sink's kinds decide what it is given; what no sink takes is counted as no_sink."""

        class SessionsOnly(playhooks.MemorySink):
            kinds = frozenset({"session"})

        sink = SessionsOnly()
        with playhooks.Tracker(sinks=[sink], clock=clock) as tracker:
            tracker.on_session_start("p1", **PLAYER)
            tracker.on_character_event("x")
            clock.advance(2)
            tracker.on_session_end()
            flushed(tracker)
            stats = tracker.stats()

        assert (1, 0) == (len(sink.sessions), len(sink.events))
        assert {"no_sink": 1} == stats["dropped"]

    def test_a_failing_sink_is_counted_and_others_still_get_payloads(self, clock, caplog):
        """A sink that raises never reaches the game; its payloads are counted as sink_error."""

        def broken(payload):
            raise RuntimeError("disk full")

        sink = playhooks.MemorySink()
        with playhooks.Tracker(sinks=[broken, sink], clock=clock) as tracker:
            tracker.on_character_event("x", **PLAYER)
            flushed(tracker)
            stats = tracker.stats()

        assert 1 == len(sink.events)
        assert {"sink_error": 1} == stats["dropped"]
        assert "disk full" in caplog.text

    def test_jsonl_sink_writes_one_payload_a_line(self, tmp_path, clock):
        """The JSON-lines file holds each payload, exactly as sent, one per line."""
        path = tmp_path / "telemetry.jsonl"
        memory = playhooks.MemorySink()
        with playhooks.Tracker(sinks=[playhooks.JsonlSink(path), memory], clock=clock) as tracker:
            tracker.on_session_start("p1", **PLAYER)
            tracker.on_character_event("level_completed", body={"level": "château"})
            clock.advance(7)
            tracker.on_session_end()

        lines = path.read_text(encoding="utf-8").splitlines()
        assert memory.events + memory.sessions == [json.loads(line) for line in lines]

    def test_jsonl_sink_appends_across_trackers(self, tmp_path, clock):
        """A second run appends to the file rather than replacing it."""
        path = tmp_path / "telemetry.jsonl"
        for _ in range(2):
            with playhooks.Tracker(sinks=[playhooks.JsonlSink(path)], clock=clock) as tracker:
                tracker.on_character_event("x", **PLAYER)

        assert 2 == len(path.read_text(encoding="utf-8").splitlines())


class TestStats:
    def test_counts_what_happened(self, tracker, clock):
        """stats() adds up accepted, handed to sinks, pending, open sessions and drops by reason."""
        tracker.on_session_start("p1", **PLAYER)
        tracker.on_character_event("good")
        tracker.on_character_event("bad name")
        flushed(tracker)

        stats = tracker.stats()
        assert (1, 1, 0, 1) == (stats["accepted"], stats["handed_to_sinks"], stats["pending"], stats["open_sessions"])
        assert {"invalid_event": 1} == stats["dropped"]

    def test_the_keys_are_the_same_whatever_the_sinks(self, emulator, tmp_path, clock):
        """A script reads stats() the same way for a MemorySink and for the services."""
        from helpers import sinks

        with playhooks.Tracker(sinks=[playhooks.MemorySink()], clock=clock) as in_memory:
            memory = in_memory.stats()
        with playhooks.Tracker(sinks=sinks(emulator), spool_dir=str(tmp_path), clock=clock) as delivering:
            delivery = delivering.stats()

        assert memory.keys() == delivery.keys()
        assert {
            "accepted", "handed_to_sinks", "written_to_spool", "confirmed_by_service", "refused_by_service",
            "retried", "recovered_sessions", "dropped", "pending", "open_sessions", "quarantined_files",
            "last_error", "spool_folder", "spool_problem",
        } == memory.keys()  # fmt: skip
        assert (None, str(tmp_path)) == (memory["spool_folder"], delivery["spool_folder"])

    def test_pending_counts_what_the_worker_has_not_taken(self, sink, clock):
        """Before the worker's round, accepted events are pending; flush returns what remains."""
        with playhooks.Tracker(sinks=[sink], clock=clock, flush_interval=60) as tracker:
            for _ in range(3):
                tracker.on_character_event("x", **PLAYER)
            pending = tracker.stats()["pending"]
            remaining = tracker.flush(timeout=5)

        assert (3, 0) == (pending, remaining)


class TestConfiguration:
    @pytest.mark.parametrize(
        "settings",
        [{"idle_timeout": 0}, {"flush_interval": -1}, {"max_queue": 0}, {"strict": "yes"}, {"clock": object()}],
        ids=["idle_timeout", "flush_interval", "max_queue", "strict", "clock"],
    )
    def test_bad_setting_is_a_configuration_error(self, settings):
        """A setting that cannot work is refused when the tracker is made, naming it."""
        [name] = settings
        with pytest.raises(playhooks.ConfigurationError, match=f"^{name}: "):
            playhooks.Tracker(**settings)

    def test_unknown_setting_is_a_configuration_error(self):
        """A misspelt setting is not silently ignored."""
        with pytest.raises(playhooks.ConfigurationError, match="idle_timout"):
            playhooks.Tracker(idle_timout=5)

    def test_a_sink_must_be_a_sink_or_callable(self):
        """Anything else is refused at once, not at the first send."""
        with pytest.raises(playhooks.ConfigurationError, match="sinks: "):
            playhooks.Tracker(sinks=["telemetry.jsonl"])

    def test_settings_are_immutable(self, tracker):
        """Settings are a value: changing them means making a new tracker."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            tracker.settings.strict = True
