"""The live page: its files (``_live/`` in the package) and its JSON, as the emulator and the relay serve them.

The page is plain HTML, CSS and JavaScript with no build step and nothing fetched from elsewhere;
it asks ``activity?after=N`` (relative to itself) every second for what arrived since it last
looked. Its answers forbid every remote load (``Content-Security-Policy``), so a payload that
smuggles markup in cannot fetch or run anything even if the page's own code slipped; the code
also writes data into the page as text only.
"""

import functools
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs

from ._activity import MAX_PAGE, ActivityLog, Tally

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_live")
# What the page's own address and its two companions are served from, and as what.
FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "live.css": ("live.css", "text/css; charset=utf-8"),
    "live.js": ("live.js", "text/javascript; charset=utf-8"),
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),  # a new version of the package is seen on the next load
)

Answer = Tuple[int, List[Tuple[str, str]], bytes]  # status, headers, body


def serve(address: str, path: str, method: str, query: str, log: ActivityLog, tally: Tally, server: str) -> Optional[Answer]:
    """The page's answer to a GET or HEAD of ``path`` under its ``address`` (its files, its feed,
    and the redirect to the address itself); None for any other request, which the server answers."""
    if path == address.rstrip("/"):
        return redirect(address)
    if not path.startswith(address) or method not in ("GET", "HEAD"):
        return None
    name = path[len(address) :]
    if name in FILES:
        return page_file(name)
    if name != "activity":
        return None
    try:
        answer = activity(log, tally, query, server)
    except ValueError as error:
        return json_answer(400, {"error": str(error)})
    return json_answer(200, answer)


def page_file(name: str) -> Answer:
    """One of the page's files, by its name under the page's address ("" for the page itself)."""
    file_name, content_type = FILES[name]
    body = _read(file_name)
    return 200, [("Content-Type", content_type), ("Content-Length", str(len(body))), *PAGE_HEADERS], body


def activity(log: ActivityLog, tally: Tally, query: str, server: str, extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The answer to ``activity?after=N&limit=M``: the entries after N, the tally, and counts.

    Raises:
        ValueError: ``after`` or ``limit`` is not a whole number, 0 or more.
    """
    arguments = parse_qs(query)
    after = _whole(arguments, "after", 0)
    limit = min(_whole(arguments, "limit", MAX_PAGE), MAX_PAGE)
    entries, missed = log.after(after, limit)
    return {
        "server": server,
        "entries": entries,
        "last": entries[-1]["seq"] if entries else max(after, 0),
        "latest": log.last,
        "missed": missed,
        "outcomes": dict(log.outcomes),
        "summary": tally.snapshot(),
        **(extra or {}),
    }


def json_answer(status: int, data: Any) -> Answer:
    # ASCII: a payload's lone surrogates (which strict JSON parsing lets through) stay escapes.
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *PAGE_HEADERS], body


def redirect(location: str) -> Answer:
    """To the page's address with its trailing slash, which its relative links need."""
    return 308, [("Location", location), ("Content-Length", "0")], b""


def respond(start_response: Callable[..., Any], answer: Answer, status_lines: Mapping[int, str]) -> List[bytes]:
    status, headers, body = answer
    start_response(status_lines[status], headers)
    return [body]


@functools.lru_cache(maxsize=None)
def _read(file_name: str) -> bytes:
    with open(os.path.join(FOLDER, file_name), "rb") as file:
        return file.read()


def _whole(arguments: Dict[str, List[str]], name: str, default: int) -> int:
    values = arguments.get(name)
    if not values:
        return default
    text = values[-1]
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"{name}: must be a whole number, 0 or more (got {text!r})")
    return int(text)
