"""The public API gives a type checker real types: a user's code checks clean under
``mypy --strict``, and the mistakes a checker should catch are caught, each on its own line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent / "typing_examples"


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("mypy")
    cache = tmp_path_factory.mktemp("mypy-cache")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(cache),
            str(EXAMPLES / "user_code.py"),
            str(EXAMPLES / "mistakes.py"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).parent.parent,
    )
    return result.stdout + result.stderr


def _error_lines(output: str, name: str) -> set[int]:
    return {
        int(match.group(1))
        for match in re.finditer(rf"{re.escape(name)}:(\d+): error:", output)
    }


def test_user_code_checks_clean(mypy_output: str) -> None:
    assert _error_lines(mypy_output, "user_code.py") == set(), mypy_output


def test_each_mistake_is_reported(mypy_output: str) -> None:
    source = (EXAMPLES / "mistakes.py").read_text().splitlines()
    expected = {number for number, line in enumerate(source, 1) if "  # error:" in line}
    assert len(expected) == 10
    assert _error_lines(mypy_output, "mistakes.py") == expected, mypy_output
