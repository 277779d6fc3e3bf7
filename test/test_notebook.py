"""The quickstart notebook runs top to bottom in a real kernel, and its stored outputs are current.

After a change that alters what the notebook shows, store fresh outputs with
``PYTHONPATH=. python test/test_notebook.py`` (it executes the notebook as the test does and
saves it).
"""

from __future__ import annotations

import copy
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import nbformat
import pytest

from openapi_client import (
    ApiClient,
    ApiException,
    ApiValueError,
    AsyncResult,
    Configuration,
    SessionManagementApi,
)
from openapi_client.simulator import DeribitSimulator

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebooks" / "quickstart.ipynb"
KERNEL_NAME = "python3"
#: Seconds each cell may take, and seconds the kernel may take to start.
CELL_TIMEOUT = 30
STARTUP_TIMEOUT = 60

#: A cell appended to the executed copy only: which interpreter the kernel runs.
PROBE_ID = "probe-interpreter"
PROBE_SOURCE = "import sys\nprint(sys.prefix)"

#: What each cell must show, as (cell id, text its outputs contain).
EXPECTED: list[tuple[str, str]] = [
    ("repr", "Configuration(host='https://www.deribit.com/api/v2', auth='access_token'"),
    ("repr", "False"),
    ("set-heartbeat", "400 10030 must_be_websocket_request"),
    (
        "cancel-on-disconnect",
        "ok\n{'scope': 'account', 'enabled': True}\nok\n{'scope': 'account', 'enabled': False}\n",
    ),
    ("http-info", "(200, 'application/json', {'scope': 'account', 'enabled': False})"),
    ("client-side-error", "interval must be"),
    ("server-error", "BadRequestException(status=400, error_code=-32602"),
    ("error-fields", "error_code:    -32602"),
    ("error-fields", "error_message: Invalid params"),
    ("error-fields", "error_data:    {'param': 'scope'"),
    ("env", "client_signature"),
    ("env-call", "{'scope': 'account', 'enabled': False}"),
    ("ws-open", "<State.READY: 'ready'>"),
    ("ws-calls", "ok\n{'scope': 'connection', 'enabled': True}\n"),
    ("ws-keywords", "200 {} {'scope': 'connection', 'enabled': True}\nRawAnswer 200 ok\n"),
    ("ws-events", "answered a test_request on connection 1"),
    ("ws-close", "[]\n"),
    ("ws-close", "['closed']"),
    ("aio", "ok\n{'scope': 'connection', 'enabled': False}\n"),
    ("aio", "<State.CLOSED: 'closed'>"),
    ("cleanup", "<DeribitSimulator stopped>"),
]

#: Credentials the notebook uses; no output may show one.
SECRETS = ("sim-token", "sim-secret", "my-secret-token")

#: Output text that differs from run to run and does not matter: Deribit's timestamps, the port.
VOLATILE = (
    (re.compile(r"'(usIn|usOut|usDiff)': \d+"), r"'\1': N"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
)

#: Text in an output that would tie the stored notebook to one machine.
MACHINE_SPECIFIC = re.compile(r"(/work/|/home/|/root/|/tmp/|/Users/|[A-Za-z]:\\|site-packages)")

REFRESH_HINT = "store fresh outputs with: PYTHONPATH=. python test/test_notebook.py"


def kernel_environment(workdir: Path) -> dict[str, str]:
    """The kernel's environment: this checkout importable, no DERIBIT_* leaking in, IPython's
    files kept in ``workdir``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DERIBIT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    env["IPYTHONDIR"] = str(workdir / ".ipython")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def execute(nb: Any, workdir: Path) -> Any:
    """Run ``nb`` top to bottom in a fresh ``python3`` kernel; raises on the first failing cell."""
    with warnings.catch_warnings():  # jupyter_core's notice about its future directories
        warnings.filterwarnings("ignore", "Jupyter is migrating", DeprecationWarning)
        from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        allow_errors=False,
        record_timing=False,
        coalesce_streams=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    return client.execute(env=kernel_environment(workdir))


def cell_by_id(nb: Any, cell_id: str) -> Any:
    for cell in nb.cells:
        if cell.get("id") == cell_id:
            return cell
    raise AssertionError(f"the notebook has no cell with id {cell_id!r}")


def output_text(cell: Any) -> str:
    """Everything a reader sees below a code cell, as text."""
    parts: list[str] = []
    for output in cell.get("outputs", []):
        kind = output["output_type"]
        if kind == "stream":
            parts.append(output["text"])
        elif kind in ("execute_result", "display_data"):
            parts.append(output["data"].get("text/plain", ""))
        elif kind == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
    return "".join(parts)


def normalized(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def code_cells(nb: Any) -> list[Any]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


@pytest.fixture(scope="module")
def stored() -> Any:
    return nbformat.read(NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def executed(stored: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    nb = copy.deepcopy(stored)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE_SOURCE, id=PROBE_ID))
    return execute(nb, tmp_path_factory.mktemp("notebook"))


@pytest.mark.timeout(STARTUP_TIMEOUT + 120)
def test_kernel_runs_this_interpreter(executed: Any) -> None:
    kernel_prefix = output_text(cell_by_id(executed, PROBE_ID)).strip()
    assert os.path.realpath(kernel_prefix) == os.path.realpath(sys.prefix), (
        f"the {KERNEL_NAME!r} kernel runs the Python of {kernel_prefix}, not this one "
        f"({sys.prefix}); install ipykernel here, or remove the other {KERNEL_NAME!r} kernelspec "
        "(jupyter kernelspec list)"
    )


def test_no_cell_failed(executed: Any) -> None:
    for index, cell in enumerate(code_cells(executed)):
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"cell {index} ({cell.get('id')}) failed: {output_text(cell)}"
        assert not any(
            o["output_type"] == "stream" and o["name"] == "stderr" for o in cell.get("outputs", [])
        ), f"cell {index} ({cell.get('id')}) wrote to stderr: {output_text(cell)}"


@pytest.mark.parametrize(("cell_id", "text"), EXPECTED, ids=[f"{c}:{t[:24]}" for c, t in EXPECTED])
def test_cell_shows(executed: Any, cell_id: str, text: str) -> None:
    assert text in output_text(cell_by_id(executed, cell_id))


def test_no_output_shows_a_credential(executed: Any, stored: Any) -> None:
    for nb in (executed, stored):
        for cell in code_cells(nb):
            shown = output_text(cell)
            for secret in SECRETS:
                assert secret not in shown, f"cell {cell.get('id')} shows {secret!r}: {shown}"


def test_stored_outputs_are_current(stored: Any, executed: Any) -> None:
    fresh = {cell.get("id"): output_text(cell) for cell in code_cells(executed)}
    for cell in code_cells(stored):
        assert normalized(output_text(cell)) == normalized(fresh[cell.get("id")]), (
            f"the stored outputs of cell {cell.get('id')!r} differ from a fresh run; "
            + REFRESH_HINT
        )


def test_stored_notebook_is_clean(stored: Any) -> None:
    nbformat.validate(stored)
    assert stored.metadata["kernelspec"]["name"] == KERNEL_NAME
    counts = [cell.get("execution_count") for cell in code_cells(stored)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"the stored outputs do not come from one run top to bottom ({counts}); " + REFRESH_HINT
    )
    for cell in code_cells(stored):
        assert "execution" not in cell.metadata, "timing metadata stored; " + REFRESH_HINT
        assert not MACHINE_SPECIFIC.search(output_text(cell)), (
            f"cell {cell.get('id')} shows a machine-specific path: {output_text(cell)}"
        )
    assert "version" not in stored.metadata.get("language_info", {})


# -- reprs, as a notebook shows them ----------------------------------------------------------

SECRET = "s3cr3t-value-9f2c"


def check_repr(value: Any, *must_show: str) -> str:
    text = repr(value)
    assert "\n" not in text and len(text) <= 140, f"repr too long for a notebook: {text}"
    for shown in (text, str(value)):
        assert SECRET not in shown, f"{type(value).__name__} shows a credential: {shown}"
    for part in must_show:
        assert part in text, f"{text} does not say {part!r}"
    return text


@pytest.mark.parametrize(
    ("settings", "must_show"),
    [
        ({"access_token": SECRET}, ("auth='access_token'",)),
        ({"client_id": "my-key", "client_secret": SECRET}, ("client_signature", "my-key")),
        ({"token_provider": lambda: SECRET}, ("token_provider",)),
        (
            {"proxy": f"http://user:{SECRET}@proxy.example:3128", "access_token": SECRET},
            ("proxy",),
        ),
        ({"testnet": True}, ("test.deribit.com", "auth='none'")),
    ],
    ids=["token", "api-key", "provider", "proxy", "testnet"],
)
def test_configuration_repr(settings: dict[str, Any], must_show: tuple[str, ...]) -> None:
    configuration = Configuration(**settings)
    check_repr(configuration, "Configuration(", *must_show)
    assert SECRET not in configuration.to_debug_report()


def test_client_and_api_reprs(simulator: DeribitSimulator) -> None:
    configuration = Configuration(host=simulator.url, access_token=SECRET)
    with ApiClient(configuration) as client:
        check_repr(client, "ApiClient(", simulator.url)
        check_repr(SessionManagementApi(client), "SessionManagementApi(", simulator.url)
    check_repr(simulator, "DeribitSimulator", simulator.url)


def test_exception_reprs(simulator: DeribitSimulator) -> None:
    simulator.add_token(SECRET)
    configuration = Configuration(
        host=simulator.url, access_token=SECRET, client_side_validation=False, retries=0
    )
    api = SessionManagementApi(ApiClient(configuration))
    with pytest.raises(ApiException) as rpc_error:
        api.public_set_heartbeat_get(5)
    check_repr(rpc_error.value, "BadRequestException(", "status=400", "error_code=-32602")

    simulator.inject("html_503")
    with pytest.raises(ApiException) as http_error:
        api.public_disable_heartbeat_get()
    check_repr(http_error.value, "ServiceException(", "status=503")

    with pytest.raises(ApiValueError) as value_error:
        api.public_set_heartbeat_get()
    check_repr(value_error.value, "interval")
    api.api_client.close()


def test_transport_error_repr() -> None:
    simulator = DeribitSimulator().start()
    url = simulator.url
    simulator.stop()  # nothing listens on that port any more
    configuration = Configuration(
        host=url, access_token=SECRET, retries=0, request_timeout=(1.0, 1.0)
    )
    with ApiClient(configuration) as client, pytest.raises(ApiException) as error:
        SessionManagementApi(client).public_disable_heartbeat_get()
    assert error.value.status == 0
    check_repr(error.value, "status=0")


def test_async_result_repr(simulator: DeribitSimulator) -> None:
    configuration = Configuration(host=simulator.url, access_token=SECRET)
    simulator.add_token(SECRET)
    with ApiClient(configuration) as client:
        result = SessionManagementApi(client).public_set_heartbeat_get(30, async_req=True)
        assert isinstance(result, AsyncResult)
        check_repr(result, "AsyncResult(")
        result.get(timeout=10)
        check_repr(result, "AsyncResult(done)")
        configuration.client_side_validation = False
        failing = SessionManagementApi(client).public_set_heartbeat_get(5, async_req=True)
        failing.wait(10)
        check_repr(failing, "AsyncResult(failed: BadRequestException(status=400", "-32602")


def refresh(path: Path | None = None) -> None:
    """Execute the notebook and store its outputs; see the module docstring."""
    import tempfile

    path = path or NOTEBOOK
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as workdir:
        nb = execute(nb, Path(workdir))
    # The kernel's exact version ties the file to one machine; the language name is enough.
    nb.metadata["language_info"] = {"name": nb.metadata["language_info"]["name"]}
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"stored fresh outputs in {path}")


if __name__ == "__main__":
    refresh()
