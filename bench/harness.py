"""Process plumbing for the benchmarks: the simulator subprocess, worker subprocesses, statistics.

Everything here is bounded in time: the simulator must print its URL within
:data:`SIMULATOR_START_TIMEOUT` seconds, every worker runs under a timeout, and every process
started here is ended in a ``finally``.
"""

from __future__ import annotations

import io
import json
import os
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

#: The repository root: by default workers import ``openapi_client`` from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: The worker script, run as ``python bench/workloads.py NAME ...``.
WORKLOADS = Path(__file__).resolve().parent / "workloads.py"
#: The interpreter every subprocess runs under: the one running the benchmark.
PYTHON = sys.executable

SIMULATOR_START_TIMEOUT = 20.0
SIMULATOR_STOP_TIMEOUT = 5.0


class BenchError(RuntimeError):
    """A benchmark could not be measured (a worker failed, timed out or printed no result)."""


class _Library:
    """Where the measured ``openapi_client`` is: the work tree, or a snapshot of a git revision."""

    root: Path = REPO_ROOT


def use_library(root: Path) -> None:
    """Measure the ``openapi_client`` package found in ``root`` from now on."""
    if not (root / "openapi_client" / "__init__.py").is_file():
        raise BenchError(f"{root} holds no openapi_client package")
    _Library.root = root


def library_root() -> Path:
    """The directory whose ``openapi_client`` every subprocess imports (and runs in)."""
    return _Library.root


def snapshot(ref: str, into: Path) -> str:
    """Extract ``openapi_client/`` as of git revision ``ref`` into ``into``; return its commit.

    Read-only for the repository (``git archive``): the work tree is left as it is.
    """
    try:
        resolved = subprocess.run(
            ["git", "rev-parse", "--verify", "--short", f"{ref}^{{commit}}"],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        )
        if resolved.returncode != 0:
            raise BenchError(f"no such git revision: {ref}")
        commit = resolved.stdout.decode("ascii").strip()
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "openapi_client"],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BenchError(f"git could not give revision {ref}: {error}") from None
    if archive.returncode != 0:
        detail = archive.stderr.decode("utf-8", "replace").strip()
        raise BenchError(f"git archive {ref} failed: {detail}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        try:
            tar.extractall(into, filter="data")
        except TypeError:  # Python without extraction filters: our own repository's archive
            tar.extractall(into)
    return commit


@contextmanager
def measured_library(ref: str | None, prefix: str) -> Iterator[str | None]:
    """Measure ``openapi_client`` as of git revision ``ref`` while the block runs; yield its commit.

    The revision is extracted (:func:`snapshot`) into a temporary directory named ``prefix...``,
    removed afterwards. Without ``ref`` the work tree is measured and ``None`` is yielded.
    """
    if not ref:
        yield None
        return
    previous = library_root()
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        commit = snapshot(ref, scratch)
        use_library(scratch)
        yield commit
    finally:
        _Library.root = previous
        shutil.rmtree(scratch, ignore_errors=True)


def worker_env(root: Path | None = None) -> dict[str, str]:
    """The environment of every subprocess: this one, with the library's root first on the path.

    ``PYTHONDONTWRITEBYTECODE`` is dropped so that imports are timed from cached bytecode, as they
    are in an installed package; so is ``PYTHONPROFILEIMPORTTIME``.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    previous = env.get("PYTHONPATH")
    first = str(root or library_root())
    env["PYTHONPATH"] = first + (os.pathsep + previous if previous else "")
    return env


class SimulatorProcess:
    """``python -m openapi_client.simulator --port 0`` in its own process, as a context manager.

    :param max_connections: simultaneous connections the simulator serves; generous, since each
        worker process opens its own and the server may notice their close a little late.
    :param root: where to import the simulator from: the measured library's root when it has
        one, else the work tree.
    :param options: more command-line options of the simulator (``--time-scale 0.01``).
    :param program: what to run instead of ``python -m openapi_client.simulator`` (a script that
        serves the simulator in its own way and prints its URL first, like the simulator).

    The HTTP benchmarks call ``public/set_heartbeat`` over HTTP, as the published API description
    does; a simulator that answers it with 10030 by default (as Deribit does today) is started
    with ``--legacy-http``.
    """

    def __init__(
        self,
        max_connections: int = 256,
        root: Path | None = None,
        options: Sequence[str] = (),
        program: Sequence[str] = ("-m", "openapi_client.simulator"),
    ) -> None:
        self.program = list(program)
        self.max_connections = max_connections
        if root is None:
            measured = library_root()
            has_simulator = (measured / "openapi_client" / "simulator" / "__main__.py").is_file()
            root = measured if has_simulator else REPO_ROOT
        self.root = root
        main = root / "openapi_client" / "simulator" / "__main__.py"
        legacy = "--legacy-http" in main.read_text(encoding="utf-8") if main.is_file() else False
        self.options = [*(["--legacy-http"] if legacy else []), *options]
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def __enter__(self) -> SimulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self._process.pid if self._process is not None else 0

    def start(self) -> None:
        """Start the simulator and read the URL it prints; raise :class:`BenchError` on failure."""
        self._stderr = tempfile.TemporaryFile()
        command = [
            PYTHON,
            *self.program,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--max-connections",
            str(self.max_connections),
            *self.options,
        ]
        self._process = subprocess.Popen(
            command,
            cwd=self.root,
            env=worker_env(self.root),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        try:
            line = self._read_line(SIMULATOR_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        if not line.startswith("http://127.0.0.1:"):
            detail = self._stderr_tail()
            self.stop()
            raise BenchError(f"the simulator printed {line!r} instead of its URL. {detail}")
        self.url = line

    def _read_line(self, timeout: float) -> str:
        process = self._process
        assert process is not None and process.stdout is not None
        stdout = process.stdout
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"the simulator printed no URL within {timeout:g} s")
                if not selector.select(remaining):
                    continue
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    raise BenchError(
                        f"the simulator exited before printing its URL. {self._stderr_tail()}"
                    )
                buffer += chunk
        return buffer.split(b"\n", 1)[0].decode("ascii", "replace").strip()

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-2000:]

    def stop(self) -> None:
        """SIGTERM (the simulator's clean stop), then SIGKILL if it has not exited in time."""
        process, self._process = self._process, None
        if process is not None:
            try:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(SIMULATOR_STOP_TIMEOUT)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(SIMULATOR_STOP_TIMEOUT)
            finally:
                if process.stdout is not None:
                    process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def run_worker(
    name: str, args: Sequence[str], timeout: float, program: Sequence[str] = (str(WORKLOADS),)
) -> dict[str, Any]:
    """Run ``bench/workloads.py NAME ARGS`` in a fresh interpreter and return its JSON result.

    The worker is killed when it outlives ``timeout`` seconds (``subprocess.run`` does that, and
    also on any exception here, Ctrl-C included). ``program`` replaces ``bench/workloads.py``
    (``bench/websocket.py`` passes its own ``worker`` command).
    """
    command = [PYTHON, *program, name, *args]
    try:
        completed = subprocess.run(
            command,
            cwd=library_root(),
            env=worker_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        what = " ".join([name, *args[:1]])
        raise BenchError(f"worker {what} timed out after {timeout:g} s") from None
    stdout = completed.stdout.decode("utf-8", "replace").strip()
    if completed.returncode != 0 or not stdout:
        tail = completed.stderr.decode("utf-8", "replace").strip()[-1500:]
        raise BenchError(f"worker {name} failed (exit {completed.returncode}): {tail}")
    try:
        result: dict[str, Any] = json.loads(stdout.splitlines()[-1])
    except ValueError:
        raise BenchError(f"worker {name} printed no JSON result: {stdout[-300:]!r}") from None
    return result


def time_command(
    argv: Sequence[str], timeout: float, capture_stderr: bool = False
) -> tuple[float, str]:
    """Run ``argv`` (a fresh process) to a successful exit: ``(wall seconds, its stderr)``.

    The stderr text is returned only with ``capture_stderr``; it is always read, so that a failure
    can say why.
    """
    env = worker_env()
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            list(argv),
            cwd=library_root(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{list(argv[1:3])} timed out after {timeout:g} s") from None
    elapsed = time.perf_counter() - started
    stderr = completed.stderr.decode("utf-8", "replace")
    if completed.returncode != 0:
        raise BenchError(
            f"{list(argv[1:3])} failed (exit {completed.returncode}): {stderr.strip()[-1500:]}"
        )
    return elapsed, stderr if capture_stderr else ""


def rotated(items: Sequence[str], round_index: int) -> list[str]:
    """``items`` rotated by ``round_index``: each variant takes each position in turn."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> tuple[float, float]:
    """The smallest and largest value (NaN, NaN when empty)."""
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so that ``finally`` blocks stop the subprocesses."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
