"""``Tracker.from_env``: a tracker's sinks and settings from ``PLAYHOOKS_*`` environment variables.

An error names the variable to fix, never the value of a secret. An empty variable counts as unset,
as a shell's ``VAR=`` means.
"""

import logging
from typing import Any, Dict, List, Mapping, Tuple

from ._errors import ConfigurationError
from ._services import PlayCamp, PlayFab

log = logging.getLogger("playhooks")

# Each sink's constructor arguments, and the variable that gives each.
_PLAYCAMP = {"api_key": "PLAYHOOKS_PLAYCAMP_API_KEY", "base_url": "PLAYHOOKS_PLAYCAMP_URL"}
_PLAYFAB = {
    "title_id": "PLAYHOOKS_PLAYFAB_TITLE_ID",
    "secret_key": "PLAYHOOKS_PLAYFAB_SECRET_KEY",
    "base_url": "PLAYHOOKS_PLAYFAB_URL",
}
_RELAY = {"base_url": "PLAYHOOKS_RELAY_URL", "ingest_key": "PLAYHOOKS_INGEST_KEY"}


def from_environment(environ: Mapping[str, str], sinks: List[Any], settings: Dict[str, Any]) -> Tuple[List[Any], Dict[str, Any]]:
    """The sinks and settings the variables in ``environ`` ask for, added to those given.

    With no sink at all, every payload would be dropped: that is a warning on the ``playhooks``
    logger, naming the variables to set, and not an error, so a game run without them still plays.

    Raises:
        ConfigurationError: naming the variable: a malformed value, PlayFab's title id without its
            secret key (or the reverse), or a service's URL without its key.
    """
    variables = {name: value for name, value in environ.items() if name.startswith("PLAYHOOKS_") and value}
    relay = [name for name in _RELAY.values() if name in variables]
    if relay:
        return _relay_mode(variables, relay, sinks, settings)
    playcamp, playfab = _PLAYCAMP["api_key"] in variables, _PLAYFAB["title_id"] in variables
    if playfab != (_PLAYFAB["secret_key"] in variables):
        raise ConfigurationError("PLAYHOOKS_PLAYFAB_TITLE_ID and PLAYHOOKS_PLAYFAB_SECRET_KEY go together: set both")
    if _PLAYCAMP["base_url"] in variables and not playcamp:
        raise ConfigurationError("PLAYHOOKS_PLAYCAMP_URL is set without PLAYHOOKS_PLAYCAMP_API_KEY: set the key too")
    if _PLAYFAB["base_url"] in variables and not playfab:
        raise ConfigurationError(
            "PLAYHOOKS_PLAYFAB_URL is set without PLAYHOOKS_PLAYFAB_TITLE_ID and PLAYHOOKS_PLAYFAB_SECRET_KEY: set them too"
        )
    chosen = list(sinks)
    if playcamp:
        chosen.append(_sink(PlayCamp, _PLAYCAMP, variables))
    if playfab:
        chosen.append(_sink(PlayFab, _PLAYFAB, variables))
    if not chosen:
        log.warning(
            "Tracker.from_env: no sink, so every payload is dropped (no_sink): set PLAYHOOKS_RELAY_URL and"
            " PLAYHOOKS_INGEST_KEY to send both through the studio's relay, or (not in a game given to players)"
            " PLAYHOOKS_PLAYCAMP_API_KEY to send sessions to PlayCamp, PLAYHOOKS_PLAYFAB_TITLE_ID and"
            " PLAYHOOKS_PLAYFAB_SECRET_KEY to send events to PlayFab"
        )
    return chosen, _with_spool(variables, settings)


def _relay_mode(variables: Mapping[str, str], given: List[str], sinks: List[Any], settings: Dict[str, Any]) -> Tuple[List[Any], Dict[str, Any]]:
    """Both services through the relay; a server secret set beside it is a mistake, said aloud."""
    if len(given) == 1:
        raise ConfigurationError("PLAYHOOKS_RELAY_URL and PLAYHOOKS_INGEST_KEY go together: set both")
    direct = [name for name in (*_PLAYCAMP.values(), *_PLAYFAB.values()) if name in variables]
    if direct:
        raise ConfigurationError(
            f"PLAYHOOKS_RELAY_URL is set with {', '.join(direct)}: in relay mode the relay holds the services'"
            " keys and the game none; unset them"
        )
    relay_arguments = {"base_url": _RELAY["base_url"], "ingest_key": _RELAY["ingest_key"]}
    chosen = list(sinks)
    chosen.append(_sink(PlayCamp, relay_arguments, variables))
    chosen.append(_sink(PlayFab, relay_arguments, variables))
    return chosen, _with_spool(variables, settings)


def _with_spool(variables: Mapping[str, str], settings: Dict[str, Any]) -> Dict[str, Any]:
    settings = dict(settings)
    if "PLAYHOOKS_SPOOL_DIR" in variables:
        settings.setdefault("spool_dir", variables["PLAYHOOKS_SPOOL_DIR"])
    return settings


def _sink(make: Any, arguments: Mapping[str, str], variables: Mapping[str, str]) -> Any:
    """The sink made from the variables that are set (the others take the sink's defaults)."""
    try:
        return make(**{argument: variables[name] for argument, name in arguments.items() if name in variables})
    except ConfigurationError as error:
        # The sinks' errors read "argument: rule", and never hold a secret: name the variable instead.
        argument, _, rule = str(error).partition(": ")
        raise ConfigurationError(f"{arguments.get(argument, argument)}: {rule}") from None
