"""The Ren'Py engines the adapter's tests run the sample in, each under Xvfb:

- Debian's Ren'Py 8.0.3, on this machine: apt-get install -y renpy xvfb xauth libgl1-mesa-dri
- Debian trixie's Ren'Py 8.3.4, in a chroot that ``.ci/renpy-trixie`` builds with debootstrap. A
  game it runs lives inside the chroot; it reaches the emulator and the relay on this machine's
  loopback, which a chroot shares. Each run mounts proc and dev into it in a mount namespace of its
  own, so nothing stays mounted when the run ends, however it ends.
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from helpers import ROOT

RENPY = "/usr/games/renpy"
SCREEN = ["xvfb-run", "-a", "-s", "-screen 0 1280x720x24"]
TIMEOUT = ["timeout", "120"]


class HostEngine:
    version = "8.0.3"
    home = Path("/usr/share/games/renpy")  # what an SDK holds: the renpy package, the launcher

    def missing(self) -> Optional[str]:
        absent = [tool for tool in (RENPY, "xvfb-run") if shutil.which(tool) is None]
        if absent:
            return f"needs {', '.join(absent)}: apt-get install -y renpy xvfb xauth libgl1-mesa-dri"
        return None

    def folder(self, tmp_path: Path) -> Path:
        """Where a test's game and its player's home go: somewhere this engine sees."""
        return tmp_path

    def discard(self, folder: Path) -> None:
        """pytest removes its own temporary folders."""

    def command(self, game_dir: Path, *arguments: str, screen: bool = True) -> List[str]:
        return [*TIMEOUT, *(SCREEN if screen else []), RENPY, str(game_dir), *arguments]

    def environment(self, home: Path, variables: Dict[str, str]) -> Dict[str, str]:
        return {**os.environ, "HOME": str(home), **variables}


class ChrootEngine:
    version = "8.3.4"
    root = Path(os.environ.get("PLAYHOOKS_TRIXIE_CHROOT", "/var/cache/playhooks-trixie"))
    home = root / "usr/share/games/renpy"

    def missing(self) -> Optional[str]:
        build = os.path.join(ROOT, ".ci", "renpy-trixie")
        if not (self.root / RENPY.lstrip("/")).exists():
            return f"needs Ren'Py 8.3.4 in a trixie chroot at {self.root}: run {build} as root"
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            return "needs root and unshare (util-linux) to run the engine in its chroot"
        return None

    def folder(self, tmp_path: Path) -> Path:
        return Path(tempfile.mkdtemp(prefix="playhooks-test-", dir=self.root / "tmp"))

    def discard(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def command(self, game_dir: Path, *arguments: str, screen: bool = True) -> List[str]:
        # unshare, sh, chroot and env each exec the next: the process started is the engine's
        # `timeout`, which leads its own group, so a test can kill the whole run at once.
        mount_and_enter = 'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec chroot "$0" "$@"'
        inside = [*TIMEOUT, *(SCREEN if screen else []), RENPY, self._inside(game_dir), *arguments]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount_and_enter, str(self.root), *inside]

    def environment(self, home: Path, variables: Dict[str, str]) -> Dict[str, str]:
        """Only what the run needs: nothing of this machine's environment leaks into the chroot."""
        return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self._inside(home), **variables}

    def _inside(self, path: Path) -> str:
        return "/" + str(Path(path).relative_to(self.root))


ENGINES = [HostEngine(), ChrootEngine()]
