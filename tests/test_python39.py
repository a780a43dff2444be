"""Ren'Py 8.0 to 8.3 embed Python 3.9: nothing in playhooks/ or adapters/ may need a newer one."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERMIN = [sys.executable, "-c", "import sys; from vermin.main import main; sys.exit(main())"]


def test_vermin_finds_nothing_newer_than_python_3_9():
    """vermin reads the source (annotations included) and fails on any 3.10+ syntax or stdlib use."""
    result = subprocess.run(
        [
            *VERMIN,
            "--target=3.9-",
            "--violations",
            "--eval-annotations",
            "--no-tips",
            "--no-parse-comments",
            os.path.join(ROOT, "playhooks"),
            os.path.join(ROOT, "adapters"),
        ],
        capture_output=True,
        text=True,
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_vermin_would_catch_newer_syntax(tmp_path):
    """The check can fail: a 3.11 module and a 3.10 keyword argument are reported.

    (Syntax that 3.9 cannot even parse, such as `match`, fails the suite's own run on 3.9.)
    """
    (tmp_path / "new.py").write_text("import tomllib\n\nPAIRS = zip([1], [2], strict=True)\n", encoding="utf-8")
    result = subprocess.run(
        [*VERMIN, "--target=3.9-", "--violations", "--eval-annotations", "--no-tips", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert 0 != result.returncode
