"""``python -m build`` makes a complete sdist and wheel, and the wheel works in a bare venv.

The build runs in build's isolated environment (it fetches setuptools and wheel from the package
index), on a copy of the checkout so that the work tree gets no ``build/`` or ``*.egg-info``. The
wheel is built from the sdist, as ``python -m build`` does by default, which also proves the sdist
holds everything the build needs. Installing it with the ``[websocket]`` extra fetches the four
runtime dependencies and ``websockets``, then the README's main job runs from the installed
console script: ``deribit-session --simulator session --duration N``.

Every test here needs the package index: they are marked ``needs_index`` and skipped unless
``OPENAPI_CLIENT_INDEX_REACHABLE=1`` says the index can be reached (no test looks it up itself).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import NamedTuple

import pytest

import openapi_client

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "openapi_client"

#: Seconds the build may take, and the install into a new venv (both fetch from the index).
BUILD_TIMEOUT = 180
INSTALL_TIMEOUT = 180
#: Seconds one command of the installed package may take.
RUN_TIMEOUT = 30

RUNTIME_REQUIREMENTS = {"urllib3", "python-dateutil", "six", "certifi"}
CONSOLE_SCRIPT = "deribit-session = openapi_client.cli:console_main"

#: Seconds the installed ``deribit-session --simulator session`` holds its session open.
SESSION_SECONDS = 4.0

INDEX_REACHABLE = os.environ.get("OPENAPI_CLIENT_INDEX_REACHABLE") == "1"

pytestmark = [
    pytest.mark.timeout(BUILD_TIMEOUT + INSTALL_TIMEOUT + 4 * RUN_TIMEOUT),
    pytest.mark.needs_index,
    pytest.mark.skipif(
        not INDEX_REACHABLE,
        reason="needs the package index (to build, and to install the wheel): set "
        "OPENAPI_CLIENT_INDEX_REACHABLE=1 where it can be reached",
    ),
]

#: What never belongs in the copy the build starts from.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "venv",
    ".tox",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".ipynb_checkpoints",
    "results",  # bench/results: charts and timings, not sources
)


class Dist(NamedTuple):
    sdist: Path
    wheel: Path


def run(command: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess:
    try:
        ran = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} did not finish within {timeout} s")
    if ran.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {ran.returncode}\n--- stdout (end)\n{ran.stdout[-3000:]}"
            f"\n--- stderr (end)\n{ran.stderr[-3000:]}"
        )
    return ran


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that would put the checkout on the path."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        and not name.startswith("DERIBIT_")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def package_modules() -> set[str]:
    """Every file of the package in the checkout, as a path relative to the root."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed")
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    source = tmp_path_factory.mktemp("source") / "checkout"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        BUILD_TIMEOUT,
        env=clean_environment(),
    )
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, (
        f"expected one sdist and one wheel: {sdists} {wheels}"
    )
    return Dist(sdists[0], wheels[0])


def wheel_names(dist: Dist) -> list[str]:
    with zipfile.ZipFile(dist.wheel) as wheel:
        return wheel.namelist()


def wheel_text(dist: Dist, suffix: str) -> str:
    with zipfile.ZipFile(dist.wheel) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{suffix}")]
        return wheel.read(name).decode("utf-8")


@pytest.fixture(scope="module")
def metadata(dist: Dist) -> Message:
    return Parser().parsestr(wheel_text(dist, "METADATA"))


def test_wheel_holds_the_package_and_nothing_else(dist: Dist) -> None:
    names = wheel_names(dist)
    assert f"{PACKAGE}/py.typed" in names
    missing = package_modules() - set(names)
    assert not missing, f"the wheel lacks {sorted(missing)}"
    top_level = {name.split("/", 1)[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {PACKAGE}


def test_sdist_holds_what_a_build_needs(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    expected = package_modules() | {"README.md", "setup.py", "pyproject.toml"}
    assert not expected - names, f"the sdist lacks {sorted(expected - names)}"


def test_console_script(dist: Dist) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel_text(dist, "entry_points.txt"))
    scripts = dict(entry_points["console_scripts"])
    name, _, target = CONSOLE_SCRIPT.partition(" = ")
    assert scripts == {name: target}


def test_metadata(metadata: Message) -> None:
    assert metadata["Version"] == openapi_client.__version__
    assert metadata["Requires-Python"] == ">=3.9"
    assert metadata["Summary"]
    classifiers = metadata.get_all("Classifier") or []
    for expected in (
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.9",
        "Typing :: Typed",
    ):
        assert expected in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    urls = metadata.get_all("Project-URL") or []
    assert urls and all(re.match(r"^[^,]+, https://\S+$", url) for url in urls), urls


def test_long_description_is_the_readme(metadata: Message) -> None:
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert description.strip() == (ROOT / "README.md").read_text(encoding="utf-8").strip()


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_exactly_the_four_runtime_requirements(metadata: Message) -> None:
    unconditional = [
        r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r.split(";", 1)[-1]
    ]
    assert {requirement_name(r) for r in unconditional} == RUNTIME_REQUIREMENTS, unconditional
    assert len(unconditional) == len(RUNTIME_REQUIREMENTS), unconditional
    listed = [
        line
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert {requirement_name(r) for r in listed} == RUNTIME_REQUIREMENTS, (
        "requirements.txt and the wheel disagree"
    )


def test_wheel_installs_and_runs_in_a_bare_venv(dist: Dist, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = clean_environment()
    run([sys.executable, "-m", "venv", str(venv)], INSTALL_TIMEOUT, env=env)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    run(
        [str(python), "-m", "pip", "install", "--quiet", f"{dist.wheel}[websocket]"],
        INSTALL_TIMEOUT,
        env=env,
    )

    # From an empty directory, so that the checkout cannot be imported by accident.
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    where = run(
        [
            str(python),
            "-c",
            "import openapi_client as p, pathlib; print(pathlib.Path(p.__file__).parent)",
        ],
        RUN_TIMEOUT,
        cwd=workdir,
        env=env,
    ).stdout.strip()
    installed = Path(where)
    assert venv in installed.parents, f"imported from {installed}, not from the venv"
    assert (installed / "py.typed").is_file()

    script = bin_dir / "deribit-session"
    usage = run([str(script), "--help"], RUN_TIMEOUT, cwd=workdir, env=env)
    assert usage.stdout.startswith("usage: deribit-session")
    # The README's main job: a WebSocket session against the embedded simulator.
    session = run(
        [str(script), "--simulator", "session", "--duration", str(SESSION_SECONDS)],
        RUN_TIMEOUT,
        cwd=workdir,
        env=env,
    )
    assert session.stderr == ""
    events = [json.loads(line)["event"] for line in session.stdout.splitlines()]
    assert events[:3] == ["Connected", "Authenticated", "SessionRestored"]
    assert "HeartbeatAnswered" in events  # every 1.5 s at the simulator's time scale
    assert events[-2:] == ["Disconnected", "Closed"]
