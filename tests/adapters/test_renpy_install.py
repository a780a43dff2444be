"""``playhooks renpy install``: packages for the engine's Python, in a game's python-packages.

The installs download from the package index, as a creator's would.
"""

import glob
import json
import os
import shutil
import subprocess
import textwrap

import pytest

from playhooks import ConfigurationError
from playhooks._cli import main
from playhooks._renpy_install import MANIFEST, engine_python, install, uninstall

from helpers import PLAYER, SECRET_KEY


def pyenv_python(version):
    """pyenv's newest ``version`` Python (not the host's), or a skip saying how to get it (a
    failure under CI, where it must be there)."""
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() if shutil.which("pyenv") else ""
    found = sorted(glob.glob(os.path.join(root or os.path.expanduser("~/.pyenv"), "versions", f"{version}.*", "bin", "python")))
    if not found:
        reason = f"needs pyenv's Python {version}: pyenv install {version}"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    return found[-1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A Ren'Py project with playhooks installed for Python 3.9, and a file of the creator's."""
    game_dir = tmp_path_factory.mktemp("game")
    os.makedirs(game_dir / "game" / "python-packages")
    (game_dir / "game" / "python-packages" / "creators_own.py").write_text("VALUE = 1\n")
    added = install(str(game_dir), "3.9")
    return game_dir, added


def packages(game_dir):
    return game_dir / "game" / "python-packages"


class TestInstall:
    def test_it_adds_playhooks_and_the_backports_the_engines_python_needs(self, installed):
        """cattrs needs exceptiongroup below 3.11: pip on a newer host leaves it out, the installer does not."""
        game_dir, added = installed
        assert {"playhooks", "attrs", "cattrs", "urllib3", "exceptiongroup"} <= set(added)
        assert os.path.isdir(packages(game_dir) / "playhooks" / "adapters")
        assert not os.path.exists(packages(game_dir) / "playhooks" / "relay")  # the studio's server, not the game's

    def test_only_python_source_goes_in(self, installed):
        """No .pyc, no compiled extension, no package metadata (which nothing may read at run time)."""
        game_dir, _ = installed
        files = [os.path.join(folder, name) for folder, _, names in os.walk(packages(game_dir)) for name in names]
        assert files and not [path for path in files if path.endswith((".pyc", ".so", ".pyd"))]
        assert not glob.glob(str(packages(game_dir) / "*.dist-info"))

    def test_for_python_3_12_no_backport_is_added(self, tmp_path):
        os.makedirs(tmp_path / "game")
        added = install(str(tmp_path), "3.12")
        assert "exceptiongroup" not in added and "playhooks" in added

    def test_installing_twice_is_safe_and_leaves_the_creators_files(self, installed):
        game_dir, added = installed
        assert install(str(game_dir), "3.9") == added
        assert (packages(game_dir) / "creators_own.py").read_text() == "VALUE = 1\n"
        assert json.loads((packages(game_dir) / MANIFEST).read_text())["added"] == added

    def test_a_creators_own_copy_in_the_way_is_refused_and_nothing_changes(self, tmp_path):
        os.makedirs(tmp_path / "game" / "python-packages" / "attrs")
        (tmp_path / "game" / "python-packages" / "attrs" / "__init__.py").write_text("# the creator's\n")
        with pytest.raises(ConfigurationError, match="attrs are there already and not from playhooks"):
            install(str(tmp_path), "3.9")
        assert os.listdir(tmp_path / "game" / "python-packages") == ["attrs"]

    def test_a_folder_that_is_not_a_renpy_project_is_refused(self, tmp_path):
        with pytest.raises(ConfigurationError, match="not a Ren'Py project"):
            install(str(tmp_path), "3.9")

    def test_an_unknown_engine_python_is_refused(self, tmp_path):
        os.makedirs(tmp_path / "game")
        with pytest.raises(ConfigurationError, match="--python: must be one of 3.9, 3.12"):
            install(str(tmp_path), "3.10")


def sdk(folder, lib, vc_version=None, init=None):
    """A Ren'Py engine's folder as the SDK and built games have it: its ``renpy`` package (only
    the files that name its version, as the engines write them) and its binaries' folders."""
    os.makedirs(folder / "renpy")
    for name in lib:
        os.makedirs(folder / "lib" / name)
    if vc_version:
        (folder / "renpy" / "vc_version.py").write_text(f"branch = 'fix'\nnightly = False\nofficial = True\nversion = '{vc_version}'\n")
    if init:
        (folder / "renpy" / "__init__.py").write_text(textwrap.dedent(init))
    return folder


ENGINE_8_0 = """\
    if PY2:
        version_tuple = (7, 5, 3, vc_version)
        version_name = "Pure Sunshine"
    else:
        version_tuple = (8, 0, 3, vc_version)
        version_name = "Heck Freezes Over"
"""


class TestTheEnginesPython:
    """Found with the game, the engine says which Python the packages are for."""

    def test_a_project_in_an_8_3_sdk_gets_3_9(self, tmp_path):
        project = sdk(tmp_path / "renpy-8.3.4-sdk", ["py3-linux-x86_64"], vc_version="8.3.4.24120703") / "lighthouse"
        os.makedirs(project / "game")
        assert engine_python(str(project)) == ("3.9", f"Ren'Py 8.3.4 in {tmp_path / 'renpy-8.3.4-sdk'}")

    def test_a_built_8_4_game_gets_3_12(self, tmp_path):
        game_dir = sdk(tmp_path / "lighthouse-1.0-pc", ["py3-linux-x86_64"], vc_version="8.4.1.25072401")
        os.makedirs(game_dir / "game")
        assert engine_python(str(game_dir))[0] == "3.12"

    def test_8_0_is_read_from_its_version_tuple(self, tmp_path):
        project = sdk(tmp_path / "renpy-8.0.3-sdk", ["py3-linux-x86_64", "py3-windows-x86_64"], init=ENGINE_8_0) / "lighthouse"
        assert engine_python(str(project)) == ("3.9", f"Ren'Py 8.0.3 in {tmp_path / 'renpy-8.0.3-sdk'}")

    def test_ren_py_7_on_python_2_is_refused_by_name(self, tmp_path):
        project = sdk(tmp_path / "renpy-7.5.3-sdk", ["py2-linux-x86_64"], init=ENGINE_8_0) / "lighthouse"
        with pytest.raises(ConfigurationError, match=r"Ren'Py 7\.5\.3 runs Python 2\.7; playhooks needs Ren'Py 8"):
            engine_python(str(project))

    def test_without_an_sdk_nothing_is_found(self, tmp_path):
        os.makedirs(tmp_path / "lighthouse" / "game")
        assert engine_python(str(tmp_path / "lighthouse")) is None

    def test_install_uses_what_it_found_and_says_so(self, tmp_path, capsys):
        project = sdk(tmp_path / "renpy-8.4.1-sdk", ["py3-linux-x86_64"], vc_version="8.4.1.25072401") / "lighthouse"
        os.makedirs(project / "game")
        assert main(["renpy", "install", str(project)]) == 0
        assert "Python 3.12 (for Ren'Py 8.4.1 in" in capsys.readouterr().out
        manifest = json.loads((packages(project) / MANIFEST).read_text())
        assert manifest["python"] == "3.12" and not any(name.startswith("exceptiongroup") for name in manifest["added"])

    def test_without_an_sdk_install_says_what_it_chose(self, tmp_path, capsys):
        os.makedirs(tmp_path / "game")
        assert main(["renpy", "install", str(tmp_path)]) == 0
        assert "Python 3.9 (no Ren'Py SDK found with the game, so Ren'Py 8.0 to 8.3; --python to choose)" in capsys.readouterr().out


class TestTheDropIn:
    def test_install_writes_it_first_in_load_order_and_keeps_a_creators_edits(self, installed):
        game_dir, _ = installed
        script = game_dir / "game" / "00playhooks.rpy"
        assert "define playhooks_relay_url" in script.read_text()
        script.write_text(script.read_text().replace("define playhooks_consent_default = False", "define playhooks_consent_default = True"))
        install(str(game_dir), "3.9")
        assert "define playhooks_consent_default = True" in script.read_text()  # the creator's settings stay


class TestUninstall:
    def test_it_removes_exactly_what_install_added(self, tmp_path):
        os.makedirs(tmp_path / "game" / "python-packages")
        (tmp_path / "game" / "python-packages" / "creators_own.py").write_text("VALUE = 1\n")
        assert main(["renpy", "install", str(tmp_path)]) == 0
        assert main(["renpy", "uninstall", str(tmp_path)]) == 0
        assert os.listdir(tmp_path / "game" / "python-packages") == ["creators_own.py"]
        assert os.listdir(tmp_path / "game") == ["python-packages"]  # the drop-in, unedited, went too

    def test_an_edited_drop_in_stays_after_uninstall(self, tmp_path):
        os.makedirs(tmp_path / "game")
        install(str(tmp_path), "3.9")
        script = tmp_path / "game" / "00playhooks.rpy"
        script.write_text(script.read_text() + "\n## the creator's note\n")
        uninstall(str(tmp_path))
        assert script.exists() and not (tmp_path / "game" / "python-packages").exists()

    def test_a_manifest_cannot_point_outside_the_folder(self, tmp_path):
        os.makedirs(tmp_path / "game" / "python-packages")
        (tmp_path / "keep.txt").write_text("mine")
        (tmp_path / "game" / "python-packages" / MANIFEST).write_text(json.dumps({"added": ["../../keep.txt", ".."]}))
        assert uninstall(str(tmp_path)) == []
        assert (tmp_path / "keep.txt").read_text() == "mine"


class TestOnTheEnginesPython:
    def test_the_installed_tree_imports_and_delivers_an_event_on_python_3_9(self, installed, emulator, tmp_path):
        """With pyenv's 3.9, isolated from every site-packages: what the game gets is all it has."""
        game_dir, _ = installed
        python = pyenv_python("3.9")
        script = textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(packages(game_dir))!r})
            import cattrs, playhooks
            assert sys.version_info[:2] == (3, 9), sys.version
            assert cattrs.__file__.startswith({str(packages(game_dir))!r}), cattrs.__file__
            tracker = playhooks.Tracker(
                [playhooks.PlayFab("ABCD", {SECRET_KEY!r}, {emulator.url!r})], spool_dir={str(tmp_path / "spool")!r}
            )
            tracker.on_session_start("player-1", playfab_id={PLAYER["playfab_id"]!r}, character_id={PLAYER["character_id"]!r})
            tracker.on_character_event("chapter_completed", body={{"chapter": 1}})
            print("pending", tracker.close(10), "confirmed_by_service", tracker.stats()["confirmed_by_service"])  # (the session is too short to send)
            """
        )
        result = subprocess.run([python, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "pending 0 confirmed_by_service 1" in result.stdout, result.stdout + result.stderr
        assert emulator.wait_until(lambda e: len(e.events) == 1, 10)
        assert emulator.events[0]["EventName"] == "chapter_completed"
