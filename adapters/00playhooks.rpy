## playhooks: play sessions and character events, for PlayCamp and PlayFab.
##
## Written by `playhooks renpy install`, beside the package it put in game/python-packages. Its name
## sorts first, so its statement is known to every script of the game.
## Edit the settings below; the rest of this file is playhooks' and is replaced by a new install
## only if you left it unchanged.
##
## In your script:
##     $ playhooks.on_character_event("chapter_completed", character_id="eileen", body={"chapter": 1})
##     playhooks event chapter_completed character eileen
## Each is sent once, whatever rollback, roll-forward or loading a save replays.

## -- Settings ------------------------------------------------------------------------------------

## The studio's relay (`playhooks relay`) and this game's ingest key. A game given to players holds
## no server secret: outside developer mode playhooks refuses one and sends through the relay.
define playhooks_relay_url = None             # "https://telemetry.example.com"
define playhooks_ingest_key = None            # "ik_mygame_1"

## Whether players are recorded until they choose (persistent.playhooks_consent holds their choice;
## the preferences snippet at the end of this file lets them change it).
define playhooks_consent_default = False

## Who the player is: None is an anonymous id made once per install (persistent.playhooks_player_id).
define playhooks_player_id = None
## PlayFab's ids for events: None derives the player's from playhooks_player_id.
define playhooks_playfab_id = None
define playhooks_character_id = "player"
## "iOS", "Android", "Web" or "Other"; None asks the engine.
define playhooks_platform = None

## -- playhooks' part ------------------------------------------------------------------------------

default _playhooks_run = _playhooks_adapter.new_run()
default _playhooks_seq = 0

## After the settings above, which are set at init 0.
init 100 python:
    import playhooks.adapters.renpy as _playhooks_adapter

    _playhooks_adapter.setup(
        relay_url=playhooks_relay_url,
        ingest_key=playhooks_ingest_key,
        consent_default=playhooks_consent_default,
        player_id=playhooks_player_id,
        playfab_id=playhooks_playfab_id,
        character_id=playhooks_character_id,
        platform=playhooks_platform,
    )
    playhooks = _playhooks_adapter.Facade()

python early:
    import re as _playhooks_re

    _PLAYHOOKS_EVENT_NAME = _playhooks_re.compile(r"[A-Za-z0-9_]{1,64}")

    def _playhooks_parse_event(lexer):
        name = lexer.word()
        character = None
        if lexer.keyword("character"):
            character = lexer.word()
        if not lexer.eol():
            lexer.error("playhooks event: expected 'playhooks event NAME [character ID]'")
        return (name, character)

    def _playhooks_execute_event(parsed):
        name, character = parsed
        options = {} if character is None else {"character_id": character}
        renpy.store.playhooks.on_character_event(name, **options)

    def _playhooks_lint_event(parsed):
        name, _ = parsed
        if not name or not _PLAYHOOKS_EVENT_NAME.fullmatch(name):
            renpy.error("playhooks event: the event name %r must be 1 to 64 letters, digits or _" % (name,))

    renpy.register_statement(
        "playhooks event", parse=_playhooks_parse_event, execute=_playhooks_execute_event, lint=_playhooks_lint_event
    )

## A preference players can change: add `use playhooks_preference` to your preferences screen.
screen playhooks_preference():
    vbox:
        label _("Share play statistics")
        textbutton _("Yes") action Function(playhooks.set_consent, True) selected persistent.playhooks_consent
        textbutton _("No") action Function(playhooks.set_consent, False) selected not persistent.playhooks_consent
