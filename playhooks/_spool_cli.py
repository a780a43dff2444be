"""``playhooks spool``: look at a spool folder, and mend it (issue 12). Parsing and printing only:
the work is ``_spool_admin``'s.

    playhooks spool status [DIR | --program NAME] [--json]
    playhooks spool retry-dead (DIR | --program NAME) [--service S] [--json]
    playhooks spool purge (DIR | --program NAME) [--dead-only] [--service S] [--yes] [--json]

``--program`` takes a game's program name (its script's name without ``.py``) or its script's
path, and finds the folder its tracker uses by default. ``status`` with neither lists the spools
in the default folders. All three are safe while a game uses the folder (see ``_spool_admin``).

Exit status: 0 done; 1 the disk refused, or a purge was declined; 2 a wrong argument (the line on
stderr names it and the rule), or a purge off a terminal without ``--yes``.

``--json`` prints one object on stdout. Its keys are stable; times are ISO 8601 UTC strings,
durations seconds, sizes bytes, counts records unless named ``files``:

    status DIR:  {"directory": str, "size_bytes": int,
                  "in_use_by": [{"owner": str, "pid": int | null}],   (null: another machine or container)
                  "services": {NAME: {"pending": int, "being_sent": int,
                                      "oldest_pending_age_seconds": float | null,
                                      "next_retry_at": str | null, "next_retry_in_seconds": float | null,
                                      "dead": int,
                                      "dead_reasons": [{"reason": str, "records": int, "sample_id": str}]}},
                  "quarantined": {"files": int, "bytes": int, "names": [str]},
                  "open_sessions": int}
    status:      {"roots": [str], "spools": [{"directory": str, "program": str, "size_bytes": int,
                                              "pending": int, "dead": int}]}
    retry-dead:  {"directory": str, "requeued": {NAME: int}, "unreadable_files": [str],
                  "in_use_by": [...as in status]}
    purge:       {"directory": str, "in_use_by": [...],
                  "will_delete": {"pending": {NAME: int}, "dead": {NAME: int},
                                  "quarantined_files": int, "checkpoints": int},
                  "deleted": (the same shape as will_delete) | null,   (null: nothing was deleted)
                  "left_being_sent": int}

``requeued`` and ``services`` name every service of the spool (PlayCamp's and PlayFab's at least),
0 where there was nothing.
"""

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, TextIO

from . import _spool_admin as admin

_PROGRAM = "playhooks spool"


class _Refused(Exception):
    """An argument breaks a rule (exit 2), or the user said no (exit 1): the message says which."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def add_parser(commands: Any) -> None:
    """The ``spool`` command and its subcommands, on the ``playhooks`` parser's ``commands``."""
    spool = commands.add_parser("spool", help="look at a spool folder: what waits, what was given up on; mend it")
    subcommands = spool.add_subparsers(dest="spool_command", required=True)
    status = subcommands.add_parser("status", help="what waits per service, the dead letters and why, quarantined files")
    retry = subcommands.add_parser("retry-dead", help="send the dead letters again, once their cause is fixed")
    purge = subcommands.add_parser("purge", help="delete what waits and the dead letters (asks first)")
    for parser in (status, retry, purge):
        parser.add_argument("dir", nargs="?", metavar="DIR", help="the spool folder")
        parser.add_argument(
            "--program", metavar="NAME", help="instead of DIR: a game's program name or script path; its default spool"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object (keys: see the module's docstring)")
    for parser in (retry, purge):
        parser.add_argument("--service", metavar="S", help="only this service's records (playcamp, playfab)")
    purge.add_argument("--dead-only", action="store_true", help="only the dead letters")
    purge.add_argument("--yes", action="store_true", help="delete without asking (required when not on a terminal)")


def run(arguments: argparse.Namespace) -> int:
    command = f"{_PROGRAM} {arguments.spool_command}"
    try:
        if arguments.spool_command == "status" and arguments.dir is None and arguments.program is None:
            return _list_spools(arguments.json)
        directory = _folder(arguments)
        if arguments.spool_command == "status":
            return _status(directory, arguments.json)
        service = _service(directory, arguments.service)
        if arguments.spool_command == "retry-dead":
            return _retry_dead(directory, service, arguments.json)
        return _purge(directory, service, arguments.dead_only, arguments.yes, arguments.json)
    except _Refused as refused:
        print(f"{command}: {refused}", file=sys.stderr)
        return refused.status
    except OSError as error:  # the disk refused: what was done before stays done, and says so
        where = f" ({error.filename})" if error.filename else ""
        print(f"{command}: {error.strerror or type(error).__name__}{where}", file=sys.stderr)
        return 1


def _folder(arguments: argparse.Namespace) -> str:
    """The spool folder DIR or --program names, checked."""
    if arguments.dir is not None and arguments.program is not None:
        raise _Refused("DIR and --program: give one of them, not both")
    try:
        if arguments.program is not None:
            return admin.program_folder(arguments.program)
        if arguments.dir is None:
            raise _Refused("DIR: required, or --program NAME (`playhooks spool status` lists the spools found)")
        return admin.check_spool(arguments.dir)
    except admin.NotASpool as error:
        raise _Refused(f"{'--program' if arguments.program is not None else 'DIR'}: {error}") from None
    except PermissionError as error:
        raise _Refused(f"DIR: {error.filename or arguments.dir} cannot be read ({error.strerror})", status=1) from None


def _service(directory: str, service: Optional[str]) -> Optional[str]:
    known = admin.services(directory)
    if service is not None and service not in known:
        raise _Refused(f"--service: must be one of this spool's services: {', '.join(known)} (got {service!r})")
    return service


# -- status ----------------------------------------------------------------------------------------


def _list_spools(as_json: bool) -> int:
    roots = admin.spool_roots()
    found = admin.find_spools(roots)
    if as_json:
        spools = [
            {
                "directory": each.directory,
                "program": each.program,
                "size_bytes": each.size,
                "pending": each.pending,
                "dead": each.dead,
            }
            for each in found
        ]
        _print_json({"roots": roots, "spools": spools})
        return 0
    if not found:
        print(f"No spools in {' or '.join(roots)}.")
        print("A game's tracker makes its spool there on its first run; for one set elsewhere (spool_dir), give its folder.")
        return 0
    print(f"Spools in {' and '.join(roots)}:")
    rows = [("PROGRAM", "PENDING", "DEAD", "SIZE", "FOLDER")]
    rows += [(each.program, str(each.pending), str(each.dead), _size(each.size), each.directory) for each in found]
    _print_table(rows, sys.stdout)
    programs = [each.program for each in found]
    example = next((name for name in programs if programs.count(name) == 1), None)
    choice = f"--program {example}" if example else "DIR"
    print(f"\nLook at one: playhooks spool status {choice} (a program name, a game's script path, or the folder).")
    return 0


def _status(directory: str, as_json: bool) -> int:
    now = time.time()
    state = admin.status(directory, now)
    if as_json:
        _print_json(_status_json(state, now))
        return 0
    print(f"Spool {directory} ({_size(state.size)} on disk)")
    print(f"In use by {_users(state.users)}." if state.users else "Not in use by a running game.")
    if not state.services:
        print("Nothing waits, nothing was given up on.")
    for service in state.services:
        print(f"\n{service.name}:")
        if service.pending:
            sending = f", {service.being_sent} being sent now" if service.being_sent else ""
            print(f"  pending: {service.pending} record(s){sending}")
            if service.oldest_created is not None:
                print(f"  oldest pending: accepted {_duration(now - service.oldest_created)} ago")
            if service.next_due is not None:
                wait = service.next_due - now
                print(f"  next try: {'now' if wait <= 0 else f'in {_duration(wait)} ({_time(service.next_due)})'}")
        else:
            print("  pending: none")
        print(f"  dead letters: {service.dead or 'none'}")
        for reason in service.dead_reasons:
            print(f"    {reason.records} x {_shorten(reason.reason)} (e.g. {reason.sample_id})")
    if state.quarantined:
        print(f"\nquarantined: {len(state.quarantined)} unreadable file(s), {_size(state.quarantined_bytes)}, never sent:")
        for name in state.quarantined[:5]:
            print(f"  {name}")
        if len(state.quarantined) > 5:
            print(f"  and {len(state.quarantined) - 5} more")
    if state.open_sessions:
        print(f"\nopen sessions: {state.open_sessions} checkpoint(s) (a stopped game's are sent at its next start)")
    if any(service.dead for service in state.services):
        print(f"\nOnce their cause is fixed: playhooks spool retry-dead {directory}")
    return 0


def _status_json(state: admin.SpoolStatus, now: float) -> Dict[str, Any]:
    services = {
        service.name: {
            "pending": service.pending,
            "being_sent": service.being_sent,
            "oldest_pending_age_seconds": _seconds(service.oldest_created, now),
            "next_retry_at": None if service.next_due is None else _time(service.next_due),
            "next_retry_in_seconds": _seconds(now, service.next_due),
            "dead": service.dead,
            "dead_reasons": [
                {"reason": reason.reason, "records": reason.records, "sample_id": reason.sample_id}
                for reason in service.dead_reasons
            ],
        }
        for service in state.services
    }
    for name in admin.services(state.directory):
        services.setdefault(name, _NOTHING_WAITS)
    return {
        "directory": state.directory,
        "size_bytes": state.size,
        "in_use_by": _users_json(state.users),
        "services": dict(sorted(services.items())),
        "quarantined": {"files": len(state.quarantined), "bytes": state.quarantined_bytes, "names": list(state.quarantined)},
        "open_sessions": state.open_sessions,
    }


_NOTHING_WAITS: Dict[str, Any] = {
    "pending": 0,
    "being_sent": 0,
    "oldest_pending_age_seconds": None,
    "next_retry_at": None,
    "next_retry_in_seconds": None,
    "dead": 0,
    "dead_reasons": [],
}


# -- mending ---------------------------------------------------------------------------------------


def _retry_dead(directory: str, service: Optional[str], as_json: bool) -> int:
    # A game running on the folder needs no stopping: the requeued files reach its queue as another
    # tracker's would. It is named all the same, since one still running with the wrong key or URL
    # would only refuse them again.
    users = admin.live_users(directory)
    done = admin.retry_dead(directory, service)
    considered = [service] if service else admin.services(directory)
    requeued = {name: done.records.get(name, 0) for name in sorted(set(considered) | set(done.records))}
    if as_json:
        unreadable = list(done.unreadable)
        _print_json({"directory": directory, "requeued": requeued, "unreadable_files": unreadable, "in_use_by": _users_json(users)})
        return 0
    print(f"Requeued from {directory}, due now:")
    for name, count in requeued.items():
        print(f"  {name}: {count} record(s)")
    if done.unreadable:
        print(f"  {len(done.unreadable)} unreadable dead letter file(s) moved to quarantine/: {', '.join(done.unreadable)}")
    if not any(requeued.values()):
        return 0
    if users:
        print(f"In use by {_users(users)}, which sends them at its next round: if it still has the wrong key or URL,")
        print("they are refused again; restart it with the fix and run retry-dead again.")
    else:
        print("No running game uses this folder: the game sends them at its next start.")
    return 0


def _purge(directory: str, service: Optional[str], dead_only: bool, yes: bool, as_json: bool) -> int:
    users = admin.live_users(directory)
    plan = admin.plan_purge(directory, service, dead_only)
    report: Dict[str, Any] = {
        "directory": directory,
        "in_use_by": _users_json(users),
        "will_delete": _plan_json(plan),
        "deleted": None,
        "left_being_sent": plan.left_being_sent,
    }
    if not plan.paths:
        if as_json:
            _print_json(report)
        else:
            print(f"Nothing to delete in {directory}" + (f" ({_left(plan)})." if plan.left_being_sent else "."))
        return 0
    if not as_json:
        print(f"Will delete from {directory}:")
        _print_plan(plan)
        if plan.left_being_sent:
            print(f"  (not {_left(plan)})")
        if users:
            print(f"In use by {_users(users)}: what it claims meanwhile is being sent, and is left to it.")
    if not yes:
        if not sys.stdin.isatty():
            if as_json:
                _print_json(report)
            raise _Refused("--yes: required to delete when not run on a terminal (nothing was deleted)")
        if _ask("Delete these? [yes/no] ") != "yes":
            if as_json:
                _print_json(report)
            raise _Refused("nothing was deleted", status=1)
    removed = admin.purge(plan)
    report["deleted"] = _plan_json(removed)
    if as_json:
        _print_json(report)
        return 0
    print("Deleted:")
    _print_plan(removed)
    return 0


def _plan_json(plan: admin.PurgePlan) -> Dict[str, Any]:
    return {
        "pending": dict(sorted(plan.pending.items())),
        "dead": dict(sorted(plan.dead.items())),
        "quarantined_files": plan.quarantined,
        "checkpoints": plan.checkpoints,
    }


def _print_plan(plan: admin.PurgePlan) -> None:
    for name in sorted(set(plan.pending) | set(plan.dead)):
        parts = []
        if name in plan.pending:
            parts.append(f"{plan.pending[name]} pending record(s)")
        if name in plan.dead:
            parts.append(f"{plan.dead[name]} dead letter(s)")
        print(f"  {name}: {', '.join(parts)}")
    if plan.quarantined:
        print(f"  quarantine: {plan.quarantined} unreadable file(s)")
    if plan.checkpoints:
        print(f"  {plan.checkpoints} checkpoint(s) of sessions a stopped game left open")
    if not (plan.pending or plan.dead or plan.quarantined or plan.checkpoints):
        print("  nothing (taken meanwhile by a running game, to send)")


def _left(plan: admin.PurgePlan) -> str:
    return f"{plan.left_being_sent} record(s) a running game is sending now"


def _ask(prompt: str) -> str:
    # The question goes to stderr, so that stdout holds only the report (or the JSON).
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower()


# -- formatting ------------------------------------------------------------------------------------


def _users(owners: List[str]) -> str:
    named = []
    for owner in owners:
        pid = admin.user_pid(owner)
        named.append(f"pid {pid}" if pid is not None else f"a process on another machine or in another container ({owner})")
    return ", ".join(named)


def _users_json(owners: List[str]) -> List[Dict[str, Any]]:
    return [{"owner": owner, "pid": admin.user_pid(owner)} for owner in owners]


def _print_json(value: Dict[str, Any]) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _print_table(rows: List[tuple], out: TextIO) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(start: Optional[float], end: Optional[float]) -> Optional[float]:
    """From ``start`` to ``end``, never negative; None if either is unknown."""
    return None if start is None or end is None else round(max(0.0, end - start), 3)


def _duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _size(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    value, unit = size / 1000, "kB"
    for larger in ("MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, larger
    return f"{value:.1f} {unit}"


def _shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
