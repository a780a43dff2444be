"""``Tracker.from_env``: a tracker's sinks and settings from ``PLAYHOOKS_*`` environment variables."""

from typing import Any, Dict, List, Mapping, Tuple

from ._errors import ConfigurationError
from ._services import PLAYCAMP_URL, PlayCamp, PlayFab


def from_environment(environ: Mapping[str, str], sinks: List[Any], settings: Dict[str, Any]) -> Tuple[List[Any], Dict[str, Any]]:
    """The sinks and settings the variables in ``environ`` ask for, added to those given.

    Raises:
        ConfigurationError: a variable is malformed, or PlayFab has one of its two.
    """
    chosen = list(sinks)
    if environ.get("PLAYHOOKS_PLAYCAMP_API_KEY"):
        chosen.append(PlayCamp(environ["PLAYHOOKS_PLAYCAMP_API_KEY"], environ.get("PLAYHOOKS_PLAYCAMP_URL") or PLAYCAMP_URL))
    title_id, secret = environ.get("PLAYHOOKS_PLAYFAB_TITLE_ID"), environ.get("PLAYHOOKS_PLAYFAB_SECRET_KEY")
    if bool(title_id) != bool(secret):
        raise ConfigurationError("PLAYHOOKS_PLAYFAB_TITLE_ID and PLAYHOOKS_PLAYFAB_SECRET_KEY go together: set both")
    if title_id and secret:
        chosen.append(PlayFab(title_id, secret, environ.get("PLAYHOOKS_PLAYFAB_URL") or None))
    settings = dict(settings)
    if environ.get("PLAYHOOKS_SPOOL_DIR"):
        settings.setdefault("spool_dir", environ["PLAYHOOKS_SPOOL_DIR"])
    return chosen, settings
