"""``playhooks renpy install``: playhooks and its dependencies, into a Ren'Py game's ``python-packages``.

Ren'Py loads pure-Python source from ``game/python-packages/`` with its own Python: 3.9 for 8.0 to
8.3, 3.12 from 8.4. ``pip install --target`` on the creator's newer Python gets that wrong twice:
it picks releases that need the newer Python, and it evaluates environment markers against the
host, so a backport the engine needs (cattrs needs ``exceptiongroup`` below 3.11) is left out,
and on the engine the worker cannot import cattrs and drops everything. So: ``pip download`` for
the engine's Python (which respects ``Requires-Python``), pure wheels only, then each wheel's
``Requires-Dist`` read again against the engine's Python for what markers left out.

What goes in is unpacked source only: no ``.dist-info`` (nothing reads package metadata there, and
inside Ren'Py none would be found), no ``.pyc``, no compiled extension (refused). What was added is
listed in ``playhooks-install.json`` beside it, so installing again replaces it and
``playhooks renpy uninstall`` removes exactly that, never a creator's own files.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

from ._errors import ConfigurationError

ENGINE_PYTHONS = {"3.9": "Ren'Py 8.0 to 8.3", "3.12": "Ren'Py 8.4 and later"}
DEFAULT_PYTHON = "3.9"
MANIFEST = "playhooks-install.json"
SCRIPT = "00playhooks.rpy"  # the drop-in, written to game/ (its source: adapters/), loaded before any script that uses its statement
REQUIREMENTS = ("attrs >= 24.1.0", "cattrs >= 24.1.0", "urllib3 >= 1.26, < 3")
# Parts of playhooks a game never runs: the relay is the studio's server.
_LEFT_OUT = ("relay",)
_MARKER = re.compile(r"""python_version\s*(<=|>=|<|>|==|!=)\s*["']([0-9.]+)["']""")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def packages_folder(game_dir: str) -> str:
    """``GAME_DIR/game/python-packages``, for a folder that is a Ren'Py project."""
    game = os.path.join(game_dir, "game")
    if not os.path.isdir(game):
        raise ConfigurationError(f"{game_dir}: not a Ren'Py project (it has no game/ folder)")
    return os.path.join(game, "python-packages")


def engine_python(game_dir: str) -> Optional[Tuple[str, str]]:
    """The Python of the Ren'Py engine found with the game, and which engine and where: the one a
    built game carries (``GAME_DIR/renpy``), or the SDK the project sits in (``GAME_DIR/../renpy``).
    None when neither is there (a project kept apart from its SDK, or a system's Ren'Py).

    Raises:
        ConfigurationError: the engine found is Ren'Py 7, on Python 2.
    """
    for folder in (os.path.abspath(game_dir), os.path.dirname(os.path.abspath(game_dir))):
        version = _renpy_version(folder)
        if version is None:
            continue
        name = "Ren'Py " + ".".join(str(part) for part in version)
        if version < (8,):
            raise ConfigurationError(f"{folder}: {name} runs Python 2.7; playhooks needs Ren'Py 8 or later")
        return ("3.9" if version < (8, 4) else "3.12"), f"{name} in {folder}"
    return None


def _renpy_version(folder: str) -> Optional[Tuple[int, ...]]:
    """The version of the engine in ``folder/renpy``: ``vc_version.py`` names it from 8.1 on; up to
    8.0 it is ``renpy/__init__.py``'s ``version_tuple``, and the source that builds 8.0 also builds
    7.5 (on Python 2), told apart by the binaries under ``lib/``."""
    package = os.path.join(folder, "renpy")
    named = re.search(r"""^version\s*=\s*["'](\d+)\.(\d+)\.(\d+)""", _text(os.path.join(package, "vc_version.py")), re.MULTILINE)
    if named:
        return tuple(int(part) for part in named.groups())
    tuples = re.findall(r"version_tuple\s*=\s*\((\d+),\s*(\d+),\s*(\d+)", _text(os.path.join(package, "__init__.py")))
    versions = sorted(tuple(int(part) for part in each) for each in tuples)
    if not versions:
        return None
    binaries = os.listdir(os.path.join(folder, "lib")) if os.path.isdir(os.path.join(folder, "lib")) else []
    if any(name.startswith("py2-") for name in binaries) and not any(name.startswith("py3-") for name in binaries):
        return versions[0]
    return versions[-1]


def _text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return ""


def install(game_dir: str, python: str = DEFAULT_PYTHON, pip: Sequence[str] = (sys.executable, "-m", "pip")) -> List[str]:
    """Put playhooks and its dependencies for ``python`` into the game; returns what was added.

    Raises:
        ConfigurationError: not a Ren'Py project, an engine Python not supported, a file of the
            creator's in the way, pip failing, or a dependency that is not pure Python.
    """
    if python not in ENGINE_PYTHONS:
        raise ConfigurationError(f"--python: must be one of {', '.join(ENGINE_PYTHONS)} (got {python!r})")
    target = packages_folder(game_dir)
    previous, script = _read_manifest(target)
    with tempfile.TemporaryDirectory(prefix="playhooks-renpy-") as work:
        wheels = _download(list(REQUIREMENTS), python, work, pip)
        wheels += _download(_missing_backports(wheels, python), python, work, pip)
        staged = os.path.join(work, "staged")
        for wheel in _needed(wheels, python):
            _unpack(wheel, staged)
        _copy_playhooks(os.path.join(staged, "playhooks"))
        names = sorted(os.listdir(staged))
        in_the_way = [name for name in names if os.path.exists(os.path.join(target, name)) and name not in previous]
        if in_the_way:
            raise ConfigurationError(
                f"{target}: {', '.join(in_the_way)} are there already and not from playhooks: remove them first"
            )
        os.makedirs(target, exist_ok=True)
        for name in previous:
            _remove(os.path.join(target, name))
        for name in names:
            shutil.move(os.path.join(staged, name), os.path.join(target, name))
    script = _write_script(game_dir, script)
    _write_manifest(target, {"python": python, "added": names, "script": script})
    return names


def uninstall(game_dir: str) -> List[str]:
    """Remove what ``install`` added (and nothing else); returns what was removed."""
    target = packages_folder(game_dir)
    added, installed_script = _read_manifest(target)
    script = os.path.join(game_dir, "game", SCRIPT)
    if _digest(script) == installed_script:  # a creator's edits stay
        _remove(script)
    for name in added:
        _remove(os.path.join(target, name))
    _remove(os.path.join(target, MANIFEST))
    if os.path.isdir(target) and not os.listdir(target):
        os.rmdir(target)
    return added


def _download(requirements: List[str], python: str, folder: str, pip: Sequence[str]) -> List[str]:
    """Pure wheels of ``requirements`` and what they need, for ``python``; their paths."""
    if not requirements:
        return []
    before = set(os.listdir(folder))
    command = [
        *pip, "download", "--quiet", "--dest", folder, "--only-binary=:all:",
        "--python-version", python, "--implementation", "py", "--abi", "none", "--platform", "any",
        *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if result.returncode != 0:
        raise ConfigurationError(f"pip could not download {', '.join(requirements)} for Python {python}:\n{result.stdout}")
    return sorted(os.path.join(folder, name) for name in set(os.listdir(folder)) - before if name.endswith(".whl"))


def _missing_backports(wheels: List[str], python: str) -> List[str]:
    """Requirements whose ``python_version`` markers hold for ``python`` and that no wheel here
    provides: those pip, judging markers by the host's Python, left out."""
    have = {_normal(os.path.basename(wheel).split("-")[0]) for wheel in wheels}
    missing = []
    for wheel in wheels:
        for requirement in _requires(wheel):
            spec, _, marker = requirement.partition(";")
            if "extra" in marker or not _holds(marker, python):
                continue
            name = _NAME.match(spec.strip())
            if name and _normal(name.group(1)) not in have:
                missing.append(spec.strip())
                have.add(_normal(name.group(1)))
    return missing


def _needed(wheels: List[str], python: str) -> List[str]:
    """The wheels the requirements need on ``python``: pip, judging markers by the host's Python,
    may have fetched a backport the engine does not need (``exceptiongroup`` for 3.12)."""
    by_name = {_normal(os.path.basename(wheel).split("-")[0]): wheel for wheel in wheels}
    waiting = [_normal(_NAME.match(requirement).group(1)) for requirement in REQUIREMENTS]  # type: ignore[union-attr]
    needed: Dict[str, str] = {}
    while waiting:
        name = waiting.pop()
        if name in needed or name not in by_name:
            continue
        needed[name] = by_name[name]
        for requirement in _requires(by_name[name]):
            spec, _, marker = requirement.partition(";")
            match = _NAME.match(spec.strip())
            if match and "extra" not in marker and _holds(marker, python):
                waiting.append(_normal(match.group(1)))
    return sorted(needed.values())


def _requires(wheel: str) -> List[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode("utf-8")
    return [line[len("Requires-Dist:") :].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def _holds(marker: str, python: str) -> bool:
    """Whether a marker made only of ``python_version`` comparisons joined by ``and`` holds for
    ``python``; a marker with anything else (a platform, an ``or``) is taken to hold."""
    version = tuple(int(part) for part in python.split("."))
    for operator, bound in _MARKER.findall(marker):
        other = tuple(int(part) for part in bound.split("."))
        holds = {
            "<": version < other, "<=": version <= other, ">": version > other,
            ">=": version >= other, "==": version == other, "!=": version != other,
        }[operator]  # fmt: skip
        if not holds and " or " not in marker:
            return False
    return True


def _unpack(wheel: str, staged: str) -> None:
    """A wheel's importable files: no metadata, no compiled code, no extension modules."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            top = name.split("/")[0]
            if top.endswith((".dist-info", ".data")) or "__pycache__" in name or name.endswith((".pyc", "/")):
                continue
            if name.endswith((".so", ".pyd", ".dylib")):
                raise ConfigurationError(f"{os.path.basename(wheel)} holds compiled code ({name}): Ren'Py loads only Python source")
            archive.extract(name, staged)


def _copy_playhooks(destination: str) -> None:
    """playhooks itself, from where it is installed (a checkout or site-packages), adapters included."""
    import playhooks
    import playhooks.adapters

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.rpy", *_LEFT_OUT)  # .rpy: Ren'Py would load it from there too
    shutil.copytree(os.path.dirname(os.path.abspath(playhooks.__file__)), destination, ignore=ignore)
    adapters = os.path.join(destination, "adapters")
    if not os.path.isdir(adapters):  # an editable install maps the package to the checkout's adapters/
        shutil.copytree(list(playhooks.adapters.__path__)[0], adapters, ignore=ignore)


def _write_script(game_dir: str, installed: Optional[str]) -> Optional[str]:
    """The drop-in ``game/00playhooks.rpy``, unless the creator has edited the one there (its
    settings are theirs); the digest of what playhooks wrote, to know that next time."""
    import playhooks.adapters

    path = os.path.join(game_dir, "game", SCRIPT)
    if os.path.exists(path) and _digest(path) != installed:
        print(f"playhooks renpy: {path} is yours (edited): left as it is", file=sys.stderr)
        return installed
    shutil.copyfile(os.path.join(list(playhooks.adapters.__path__)[0], SCRIPT), path)
    return _digest(path)


def _digest(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()
    except OSError:
        return None


def _read_manifest(target: str) -> Tuple[List[str], Optional[str]]:
    """What an earlier install added to ``target``, and the digest of the drop-in it wrote."""
    try:
        with open(os.path.join(target, MANIFEST), encoding="utf-8") as file:
            manifest = json.load(file)
        added, script = manifest.get("added", []), manifest.get("script")
    except FileNotFoundError:
        return [], None
    except (OSError, ValueError, AttributeError) as error:
        raise ConfigurationError(f"{os.path.join(target, MANIFEST)}: unreadable ({error}): remove what playhooks added by hand") from None
    # Names only: a manifest is a file anyone could edit, and must never point outside the folder.
    names = [name for name in added if isinstance(name, str) and name and os.path.basename(name) == name and name not in (".", "..")]
    return names, script if isinstance(script, str) else None


def _write_manifest(target: str, manifest: Dict[str, object]) -> None:
    with open(os.path.join(target, MANIFEST), "w", encoding="utf-8") as file:
        json.dump(manifest, file, indent=2)
        file.write("\n")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

