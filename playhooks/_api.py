"""What both services' APIs accept and answer, in words the emulator and the relay share.

The emulator stands in for PlayCamp and PlayFab, and the relay serves their routes to games: both
parse bodies the same strict way and refuse in the services' own error shapes, so a client (and
the PlayFab SDK) handles either without knowing which it talks to.
"""

import http
import json
from typing import Any, Dict, Mapping, Optional, Tuple

from . import _wire
from ._models import MAX_BULK_SESSIONS, PlayCampError, PlayCampErrorDetail, PlayFabError


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


# Python's parser also takes NaN and Infinity, which no JSON client sends. One decoder for all
# requests: json.loads with a parse_constant would build a new one for each.
_JSON = json.JSONDecoder(parse_constant=_not_json)


def is_json(environ: Mapping[str, Any]) -> bool:
    """Whether a WSGI request says its body is JSON (``application/json``, any parameters)."""
    return str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower() == "application/json"


def parse_json(raw: bytes) -> Any:
    """Strict JSON, in any encoding ``json.loads`` takes.

    Nesting too deep for the parser's recursion (``[`` a hundred thousand times) is not JSON either.
    """
    try:
        return _JSON.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except RecursionError:
        raise ValueError("nested too deep") from None


def bulk_envelope_problem(data: Any) -> Optional[Tuple[str, str]]:
    """What is wrong with a bulk request outside its sessions (each of which may fail alone)."""
    if not isinstance(data, dict):
        return "$", "must be a JSON object"
    unknown = sorted(set(data) - {"sessions", "callbackId", "isTest"})
    if unknown:
        return "$", "has unknown fields: " + ", ".join(unknown)
    sessions = data.get("sessions")
    if type(sessions) is not list:
        return "sessions", "must be an array" if "sessions" in data else "is required"
    if not 1 <= len(sessions) <= MAX_BULK_SESSIONS:
        return "sessions", f"must hold 1 to {MAX_BULK_SESSIONS} sessions, not {len(sessions)}"
    if "callbackId" in data and (type(data["callbackId"]) is not str or not data["callbackId"]):
        return "callbackId", "must be a non-empty string"
    if "isTest" in data and type(data["isTest"]) is not bool:
        return "isTest", "must be true or false"
    return None


STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in http.HTTPStatus}

_PLAYCAMP_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
}

def playcamp_code(status: int) -> str:
    return _PLAYCAMP_CODES.get(status, "INTERNAL_ERROR")


def playcamp_body(code: str, message: str) -> Dict[str, Any]:
    return _wire.unstructure(PlayCampError(code=code, error=message))


def playfab_error_body(
    status: int,
    error: str,
    error_code: int,
    message: str,
    *,
    details: Optional[Mapping[str, Tuple[str, ...]]] = None,
    retry_after_seconds: Optional[int] = None,
) -> Dict[str, Any]:
    body = PlayFabError(
        code=status,
        status=http.HTTPStatus(status).phrase.replace(" ", ""),
        error=error,
        error_code=error_code,
        error_message=message,
        error_details=details,
        retry_after_seconds=retry_after_seconds,
    )
    return _wire.unstructure(body)


def playcamp_validation_body(path: str, message: str) -> Dict[str, Any]:
    """PlayCamp's 400: one detail, for the first rule the body broke."""
    error = PlayCampError(
        code="VALIDATION_ERROR",
        error="Validation Error",
        details=(PlayCampErrorDetail(message=message, path=path, target="body"),),
    )
    return _wire.unstructure(error)
