"""Every ```python example in README.md and docs/ runs as written, against the simulator.

Each block runs in its own Python process (a fresh namespace, bounded in time) with Deribit's hosts
and the placeholder credentials replaced by a running simulator's URL and its test credentials.
Blocks fenced as ```py, ```sh and so on are illustrative and not run. A block may reach loopback
only: any other address is refused and fails the test, even if the example catches the error.

Also: relative links between the pages resolve, and docs/ has an index linking every page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from openapi_client.simulator import DeribitSimulator

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: Seconds one example may run.
BLOCK_TIMEOUT = 20

#: What a reader would fill in, and what the simulator offers instead (the URL is filled in later).
PLACEHOLDERS: dict[str, str | None] = {
    "https://www.deribit.com/api/v2": None,
    "https://test.deribit.com/api/v2": None,
    "YOUR_ACCESS_TOKEN": "sim-token",
    "YOUR_CLIENT_ID": "sim-client",
    "YOUR_CLIENT_SECRET": "sim-secret",
}

#: Pages whose examples call the heartbeat methods over HTTP, as the published API description
#: does (the generated examples, kept verbatim): the harness runs them against a simulator with
#: ``legacy_http=True``, and adds it to the simulators they start. Today's Deribit refuses those
#: calls over HTTP with error 10030; ``test_usage_example_against_both_behaviours`` shows both.
LEGACY_HTTP_PAGES = frozenset(
    {
        "docs/SessionManagementApi.md",
    }
)

#: Printed by the runner when an example tried to leave loopback.
OFF_LOOPBACK = "DOCS-EXAMPLE-LEFT-LOOPBACK"

#: What generated-style examples print when the call failed.
CALL_FAILED = "Exception when calling"

# Runs one example: refuses every address that is not loopback, then executes the block compiled
# with the markdown file's name and line numbers, so a traceback points into the page.
RUNNER = f"""
import ipaddress, socket, sys

def _loopback(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False

def _refuse(host):
    sys.stderr.write("{OFF_LOOPBACK} " + repr(host) + "\\n")
    return OSError("docs example tried to reach " + repr(host) + ": only loopback is allowed")

_getaddrinfo = socket.getaddrinfo
def _checked_getaddrinfo(host, *args, **kwargs):
    if not _loopback(host):
        raise _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = _checked_getaddrinfo

_connect = socket.socket.connect
def _checked_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise _refuse(address[0])
    return _connect(self, address)
socket.socket.connect = _checked_connect

page, fence_line = sys.argv[1], int(sys.argv[2])
source = sys.stdin.read()
sys.argv = [page]
exec(compile("\\n" * fence_line + source, page, "exec"), {{"__name__": "__main__"}})
"""

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")


class Block(NamedTuple):
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    language: str
    source: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    found = [ROOT / "README.md"] if (ROOT / "README.md").is_file() else []
    return found + sorted(DOCS.rglob("*.md"))


def fenced_blocks(path: Path, root: Path = ROOT) -> Iterator[Block]:
    """Every fenced code block of a markdown page, with the language its fence names."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(root).as_posix()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = (opening["info"].split() or [""])[0].lower()
        body: list[str] = []
        while index < len(lines):
            closing = FENCE.match(lines[index])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"]
            ):
                break
            line = lines[index]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            index += 1
        yield Block(page, index - len(body), language, "\n".join(body) + "\n")
        index += 1


def python_blocks() -> list[Block]:
    return [
        block for path in pages() for block in fenced_blocks(path) if block.language == "python"
    ]


BLOCKS = python_blocks()


def example_environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DERIBIT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def filled_in(source: str, url: str, page: str = "") -> str:
    for placeholder, value in PLACEHOLDERS.items():
        source = source.replace(placeholder, url if value is None else value)
    if page in LEGACY_HTTP_PAGES and "legacy_http" not in source:
        source = re.sub(
            r"\bDeribitSimulator\((\)?)",
            lambda call: "DeribitSimulator(legacy_http=True" + (")" if call[1] else ", "),
            source,
        )
    return source


class Outcome(NamedTuple):
    returncode: int | None  # None: it did not finish within BLOCK_TIMEOUT
    stdout: str
    stderr: str


def run_example(block: Block, workdir: Path, legacy_http: bool | None = None) -> Outcome:
    """Run ``block`` in a new Python process against a simulator of its own, answering as the
    published description does when ``legacy_http`` (by default: for the pages listed above)."""
    if legacy_http is None:
        legacy_http = block.page in LEGACY_HTTP_PAGES
    with DeribitSimulator(legacy_http=legacy_http) as simulator:
        try:
            ran = subprocess.run(
                [sys.executable, "-c", RUNNER, block.page, str(block.line)],
                input=filled_in(block.source, simulator.url, block.page),
                capture_output=True,
                text=True,
                cwd=workdir,
                env=example_environment(),
                timeout=BLOCK_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            return Outcome(None, str(expired.stdout or ""), str(expired.stderr or ""))
    return Outcome(ran.returncode, ran.stdout, ran.stderr)


@pytest.fixture(scope="module")
def example_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Outcome]]]:
    """The selected examples, started at once, a few at a time (they mostly wait on start-up)."""
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_example_runs"
        and hasattr(item, "callspec")
    ]
    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    try:
        yield {
            block.id: pool.submit(run_example, block, tmp_path_factory.mktemp("example"))
            for block in selected
        }
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# A test waits for its example to start (the pool runs a few at once) and to finish.
@pytest.mark.timeout(2 * BLOCK_TIMEOUT + 15)
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_example_runs(block: Block, example_runs: dict[str, Future[Outcome]]) -> None:
    ran = example_runs[block.id].result(timeout=2 * BLOCK_TIMEOUT + 5)
    report = f"{block.id}\n--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr}"
    if ran.returncode is None:
        pytest.fail(f"the example did not finish within {BLOCK_TIMEOUT} s: {report}")
    if ran.returncode != 0:
        pytest.fail(f"the example failed (exit status {ran.returncode}): {report}")
    if OFF_LOOPBACK in ran.stderr:
        pytest.fail(f"the example reached beyond loopback: {report}")
    if CALL_FAILED in ran.stdout:
        pytest.fail(f"the example's call failed: {report}")


def test_fences_are_found(tmp_path: Path) -> None:
    # Guards the parser: a page with ```python blocks must yield them, with their own lines.
    sample = tmp_path / "sample.md"
    sample.write_text(
        "intro\n\n```python\nx = 1\n```\n\n  ~~~~ Python title\n  y = 2\n  ~~~~\n```py\nz\n```\n",
        encoding="utf-8",
    )
    blocks = list(fenced_blocks(sample, tmp_path))
    assert [(b.line, b.language, b.source) for b in blocks] == [
        (3, "python", "x = 1\n"),
        (7, "python", "y = 2\n"),
        (10, "py", "z\n"),
    ]


def test_readme_has_examples() -> None:
    assert (ROOT / "README.md").is_file(), "README.md is missing"
    readme = [block for block in BLOCKS if block.page == "README.md"]
    assert readme, "README.md has no ```python example that the suite runs"


# -- links --------------------------------------------------------------------------------------

LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    # Links inside code blocks are code, not links.
    for block in fenced_blocks(path):
        text = text.replace(block.source, "")
    targets = []
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize(
    "path", pages(), ids=[path.relative_to(ROOT).as_posix() for path in pages()]
)
def test_relative_links_resolve(path: Path) -> None:
    broken = [target for target in relative_links(path) if not (path.parent / target).exists()]
    assert not broken, f"{path.relative_to(ROOT)} links to missing files: {broken}"


def test_docs_index_links_every_page() -> None:
    candidates = [DOCS / "index.md", DOCS / "README.md"]
    index = next((path for path in candidates if path.is_file()), None)
    assert index is not None, "docs/ has no index page (docs/index.md or docs/README.md)"
    linked = {(index.parent / target).resolve() for target in relative_links(index)}
    documents = sorted(DOCS.rglob("*.md")) + sorted(DOCS.rglob("*.ipynb"))
    missing = [
        path.relative_to(ROOT).as_posix()
        for path in documents
        if path != index and path.resolve() not in linked
    ]
    assert not missing, f"{index.relative_to(ROOT)} does not link to {missing}"


# -- the generated usage example, kept verbatim -------------------------------------------------

#: The usage example of docs/SessionManagementApi.md as generated from the published API
#: description; it must keep working as written (the host aside).
USAGE_EXAMPLE = '''import openapi_client
from openapi_client.rest import ApiException
from pprint import pprint

configuration = openapi_client.Configuration(host="https://www.deribit.com/api/v2")
configuration.access_token = "YOUR_ACCESS_TOKEN"

with openapi_client.ApiClient(configuration) as api_client:
    api_instance = openapi_client.SessionManagementApi(api_client)
    interval = 60  # float | The heartbeat interval in seconds, but not less than 10
    try:
        api_response = api_instance.public_set_heartbeat_get(interval)
        pprint(api_response)
    except ApiException as e:
        print("Exception when calling SessionManagementApi->public_set_heartbeat_get: %s\\n" % e)
'''


def usage_example() -> Block:
    page = DOCS / "SessionManagementApi.md"
    return next(block for block in fenced_blocks(page) if block.language == "python")


def test_usage_example_is_verbatim() -> None:
    assert usage_example().source == USAGE_EXAMPLE


@pytest.mark.parametrize("legacy_http", [True, False], ids=["description", "today"])
def test_usage_example_against_both_behaviours(legacy_http: bool, tmp_path: Path) -> None:
    # As the description says: "ok". As today's Deribit answers over HTTP: the example's own
    # except branch, with a message that says where the method works and what to use instead.
    ran = run_example(usage_example(), tmp_path, legacy_http=legacy_http)
    assert ran.returncode == 0, ran.stderr
    if legacy_http:
        assert "'result': 'ok'" in ran.stdout and CALL_FAILED not in ran.stdout
    else:
        assert CALL_FAILED in ran.stdout
        assert "10030" in ran.stdout and "must_be_websocket_request" in ran.stdout
        assert "WebSocket" in ran.stdout and "WebSocketApiClient" in ran.stdout
        assert "sim-token" not in ran.stdout
