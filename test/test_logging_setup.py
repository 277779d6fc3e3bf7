"""The library logs the way a library should.

* every logger it creates is ``openapi_client`` or below it, and it logs through no other;
* the package logger has a ``NullHandler`` and the library adds no handler anywhere else;
* with logging left unconfigured, importing it and making calls prints nothing, on stdout or
  stderr, even when it logs a warning or ``debug`` is on.

The first two are checked in a fresh interpreter (the test process has long imported everything
and pytest configures logging), which runs :data:`PROBE` and reports what it saw as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import openapi_client
from openapi_client import (
    ApiClient,
    ApiException,
    Configuration,
    RetryPolicy,
    SessionManagementApi,
)
from openapi_client.simulator import DeribitSimulator

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "openapi_client"
PACKAGE_DIR = str(Path(openapi_client.__file__).resolve().parent)

#: urllib3's own loggers: the library sets their level when ``debug`` changes (as generated
#: clients do) and filters credentials out of one, but never logs through them.
CONFIGURED_NOT_OWNED = {"urllib3", "urllib3.connectionpool"}

PROBE_TIMEOUT = 30

pytestmark = pytest.mark.timeout(PROBE_TIMEOUT + 15)

# Runs in a fresh interpreter with logging unconfigured. Records who asks for which logger and
# which logger handles each record, without adding a handler; writes its findings to argv[1].
PROBE = r"""
import json, logging, pkgutil, sys, time

asked = []
_get_logger = logging.getLogger
def _recording_get_logger(name=None):
    asked.append([sys._getframe(1).f_globals.get("__name__", "?"), name])
    return _get_logger(name)
logging.getLogger = _recording_get_logger

handled = []
_handle = logging.Logger.handle
def _recording_handle(self, record):
    handled.append([self.name, record.pathname, record.levelname])
    return _handle(self, record)
logging.Logger.handle = _recording_handle

import openapi_client
null_handler_on_import = [type(h).__name__ for h in _get_logger("openapi_client").handlers]

for module in pkgutil.walk_packages(openapi_client.__path__, "openapi_client."):
    __import__(module.name)

from io import StringIO
from openapi_client import ApiClient, ApiException, Configuration, RetryPolicy, SessionManagementApi
from openapi_client.cli import main as cli_main
from openapi_client.simulator import DeribitSimulator
from openapi_client.websocket import WebSocketApiClient

def exercise(debug):
    with DeribitSimulator(legacy_http=True) as sim:
        configuration = Configuration(
            host=sim.url,
            client_id="sim-client",
            client_secret="sim-secret",
            retries=RetryPolicy(total=2, backoff_factor=0.01, backoff_max=0.02),
            request_timeout=(2, 2),
            debug=debug,
        )
        with ApiClient(configuration) as client:
            api = SessionManagementApi(client)
            api.public_set_heartbeat_get(30)
            api.public_disable_heartbeat_get()
            api.private_enable_cancel_on_disconnect_get(scope="account")
            api.private_get_cancel_on_disconnect_get(scope="account")
            api.private_disable_cancel_on_disconnect_get_with_http_info(scope="account")
            api.public_set_heartbeat_get(30, async_req=True).get(10)
            sim.inject("html_503", 1)
            api.public_set_heartbeat_get(30)  # retried once
            configuration.client_side_validation = False
            try:
                api.public_set_heartbeat_get(5)
            except ApiException:
                pass
            sim.revoke_tokens()
            api.private_get_cancel_on_disconnect_get()  # re-authenticates
    with DeribitSimulator(time_scale=0.1) as sim:  # heartbeats every 1 s: none missed
        configuration = Configuration(
            host=sim.url,
            client_id="sim-client",
            client_secret="sim-secret",
            retries=RetryPolicy(total=2, backoff_factor=0.01, backoff_max=0.02),
            request_timeout=(2, 2),
            debug=debug,
        )
        with WebSocketApiClient(
            configuration,
            heartbeat=10,
            cancel_on_disconnect=True,
            reconnect_backoff=RetryPolicy(backoff_factor=0.01, backoff_max=0.02),
        ) as ws_client:
            api = SessionManagementApi(ws_client)
            api.private_get_cancel_on_disconnect_get()
            sim.inject("ws_drop", path="/public/test")
            ws_client.call("public/test", idempotent=True)  # retried on the new connection
            api.public_set_heartbeat_get(10)
    out = StringIO()
    # Today's Deribit refuses set_heartbeat over HTTP (10030): --legacy-http answers it.
    for argv, status in (
        (["--simulator", "set-heartbeat", "30"], 1),
        (["--simulator", "--legacy-http", "set-heartbeat", "30"], 0),
        (["--simulator", "session", "--duration", "0.3"], 0),
    ):
        assert cli_main(argv, stdout=out, stderr=out) == status

exercise(debug=False)
# Whatever the library may warn about, unconfigured logging must not print it.
_get_logger("openapi_client.credentials").warning("probe warning")
_get_logger("openapi_client.api_client").error("probe error")
exercise(debug=True)

loggers = logging.Logger.manager.loggerDict
with_handlers = {
    name: [type(h).__name__ for h in logger.handlers]
    for name, logger in loggers.items()
    if isinstance(logger, logging.Logger) and logger.handlers
}
with open(sys.argv[1], "w") as report:
    json.dump({
        "asked": asked,
        "handled": handled,
        "null_handler_on_import": null_handler_on_import,
        "root_handlers": [type(h).__name__ for h in logging.getLogger().handlers],
        "with_handlers": with_handlers,
    }, report)
"""


def under_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("logging")
    report = workdir / "report.json"
    env = {name: value for name, value in os.environ.items() if not name.startswith("DERIBIT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    env.pop("PYTHONWARNINGS", None)
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, str(report)],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=PROBE_TIMEOUT,
        check=False,
    )
    if ran.returncode != 0:
        pytest.fail(f"the probe failed:\n{ran.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    result["stdout"], result["stderr"] = ran.stdout, ran.stderr
    return result


def test_every_logger_the_library_asks_for_is_its_own(probe: dict[str, Any]) -> None:
    asked_by_library = [(module, name) for module, name in probe["asked"] if under_package(module)]
    assert asked_by_library, "the probe saw the library ask for no logger at all"
    foreign = [
        (module, name)
        for module, name in asked_by_library
        if not under_package(name or "") and name not in CONFIGURED_NOT_OWNED
    ]
    assert not foreign, f"loggers outside {PACKAGE}.*: {foreign}"


def test_the_library_logs_only_through_its_own_loggers(probe: dict[str, Any]) -> None:
    from_library = [
        (name, path, level)
        for name, path, level in probe["handled"]
        if os.path.realpath(path).startswith(PACKAGE_DIR + os.sep)
    ]
    assert from_library, "the probe saw no log record from the library, even with debug on"
    foreign = [record for record in from_library if not under_package(record[0])]
    assert not foreign, f"records logged outside {PACKAGE}.*: {foreign}"


def test_package_logger_has_a_null_handler_and_nothing_else_does(probe: dict[str, Any]) -> None:
    assert probe["null_handler_on_import"] == ["NullHandler"]
    assert probe["root_handlers"] == []
    added = {
        name: handlers
        for name, handlers in probe["with_handlers"].items()
        if under_package(name) or name == "root"
    }
    assert added == {PACKAGE: ["NullHandler"]}
    # urllib3 keeps its own NullHandler; the library adds none to it.
    assert probe["with_handlers"].get("urllib3", ["NullHandler"]) == ["NullHandler"]


def test_unconfigured_logging_prints_nothing(probe: dict[str, Any]) -> None:
    assert probe["stdout"] == ""
    assert probe["stderr"] == ""


def test_package_logger_has_a_null_handler_here_too() -> None:
    handlers = logging.getLogger(PACKAGE).handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


@pytest.fixture
def default_levels() -> Iterator[None]:
    """Restore the levels ``debug=True`` sets on the package's and urllib3's loggers."""
    names = (PACKAGE, "urllib3")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("default_levels")
@pytest.mark.parametrize("debug", [False, True], ids=["default", "debug"])
def test_calls_print_nothing(
    capfd: pytest.CaptureFixture[str], simulator: DeribitSimulator, debug: bool
) -> None:
    configuration = Configuration(
        host=simulator.url,
        access_token="sim-token",
        retries=RetryPolicy(total=2, backoff_factor=0.01, backoff_max=0.02),
        request_timeout=(2, 2),
        debug=debug,
    )
    simulator.inject("html_503", 1)
    with ApiClient(configuration) as client:
        api = SessionManagementApi(client)
        answers: list[Any] = [
            api.public_set_heartbeat_get(30),
            api.public_disable_heartbeat_get(),
            api.private_enable_cancel_on_disconnect_get(),
            api.private_get_cancel_on_disconnect_get(),
            api.private_disable_cancel_on_disconnect_get(),
        ]
        configuration.client_side_validation = False
        with pytest.raises(ApiException):
            api.public_set_heartbeat_get(5)
    assert [answer["result"] for answer in answers][:3] == ["ok", "ok", "ok"]
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
