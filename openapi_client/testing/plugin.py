"""The pytest plugin of ``openapi_client``: Deribit simulator fixtures for bot tests.

Registered through the package's ``pytest11`` entry point, so installing the package is enough.

Fixtures (each fresh per test):

- ``deribit_simulator``: a started :class:`~openapi_client.simulator.DeribitSimulator`;
- ``deribit_configuration``: a :class:`~openapi_client.Configuration` for it, with the
  simulator's API key (``sim-client``/``sim-secret``);
- ``deribit_api_client``: an HTTP :class:`~openapi_client.ApiClient` on it;
- ``deribit_session_api``: :class:`~openapi_client.SessionManagementApi` over that client;
- ``deribit_ws_client``: an open :class:`~openapi_client.websocket.WebSocketApiClient` on it
  (needs the ``[websocket]`` extra);
- ``deribit_aio_client``: an open :class:`openapi_client.aio.WebSocketApiClient` on it, for
  ``async def`` tests (there when pytest-asyncio is installed; ``deribit.aio_client()`` works
  under any asyncio test runner);
- ``deribit``: a :class:`~openapi_client.testing.DeribitTestKit` to open more clients, inject
  faults and assert on requests and cancel-on-disconnect events.

Settings: ``--deribit-tls`` (ini ``deribit_tls``) serves HTTPS and WSS with a throwaway CA
(needs ``trustme``); ``--deribit-time-scale`` (ini ``deribit_time_scale``, default 0.1) scales
the simulator's WebSocket timers. ``@pytest.mark.deribit(legacy_http=True, rate_limit=True, ...)``
passes keyword arguments to the simulator of one test.
"""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from openapi_client import ApiClient, Configuration, SessionManagementApi, aio
    from openapi_client.simulator import DeribitSimulator
    from openapi_client.testing import DeribitTestKit
    from openapi_client.websocket import WebSocketApiClient

#: Real seconds per API second for the simulator's WebSocket timers in tests: a 10 s heartbeat
#: runs as 1 s, quick enough for a test and slow enough for a busy machine.
DEFAULT_TIME_SCALE = 0.1

_TLS_HELP = "serve the Deribit simulator over HTTPS/WSS with a throwaway CA (needs trustme)"
_SCALE_HELP = (
    "real seconds per API second for the Deribit simulator's WebSocket timers "
    f"(default {DEFAULT_TIME_SCALE}: a 10 s heartbeat runs as {10 * DEFAULT_TIME_SCALE:g} s)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deribit", "Deribit simulator (openapi_client.testing)")
    group.addoption("--deribit-tls", action="store_true", default=None, help=_TLS_HELP)
    group.addoption("--deribit-time-scale", type=float, default=None, help=_SCALE_HELP)
    parser.addini("deribit_tls", _TLS_HELP, type="bool", default=False)
    parser.addini("deribit_time_scale", _SCALE_HELP, default=str(DEFAULT_TIME_SCALE))


def pytest_configure(config: pytest.Config) -> None:
    _time_scale(config)  # a bad setting stops the run before any test
    config.addinivalue_line(
        "markers",
        "deribit(**settings): keyword arguments for this test's DeribitSimulator "
        "(legacy_http=True, rate_limit=True, token_ttl=..., clock=...)",
    )


def _time_scale(config: pytest.Config) -> float:
    option = config.getoption("deribit_time_scale")
    value = option if option is not None else config.getini("deribit_time_scale")
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"deribit_time_scale must be a number, got {value!r}") from None
    if not scale > 0:
        raise pytest.UsageError(f"deribit_time_scale must be > 0, got {value!r}")
    return scale


def _tls(config: pytest.Config) -> bool:
    option = config.getoption("deribit_tls")
    return bool(option if option is not None else config.getini("deribit_tls"))


class _Tls:
    """A throwaway CA and a server context for 127.0.0.1 signed by it."""

    def __init__(self, directory: Path) -> None:
        try:
            import trustme
        except ImportError:
            raise pytest.UsageError(
                "--deribit-tls needs the trustme package: pip install trustme"
            ) from None
        authority = trustme.CA()
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1", "localhost").configure_cert(self.server_context)
        self.ca_file = str(directory / "deribit-simulator-ca.pem")
        authority.cert_pem.write_to_path(self.ca_file)


@pytest.fixture(scope="session")
def _deribit_tls(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> _Tls | None:
    if not _tls(request.config):
        return None
    return _Tls(tmp_path_factory.mktemp("deribit-tls"))


@pytest.fixture
def deribit_simulator(
    request: pytest.FixtureRequest, _deribit_tls: _Tls | None
) -> Iterator[DeribitSimulator]:
    """A started simulator, fresh for this test, stopped after it."""
    from openapi_client.simulator import DeribitSimulator

    settings: dict[str, Any] = {"time_scale": _time_scale(request.config)}
    if _deribit_tls is not None:
        settings["ssl_context"] = _deribit_tls.server_context
    for marker in reversed(list(request.node.iter_markers("deribit"))):
        if marker.args:
            raise pytest.UsageError("@pytest.mark.deribit takes keyword arguments only")
        settings.update(marker.kwargs)
    with DeribitSimulator(**settings) as simulator:
        yield simulator


@pytest.fixture
def deribit_configuration(
    deribit_simulator: DeribitSimulator, _deribit_tls: _Tls | None
) -> Configuration:
    """Settings for the simulator: its host, its API key, short timeouts, quick retries."""
    from openapi_client.testing import simulator_configuration

    if _deribit_tls is None:
        return simulator_configuration(deribit_simulator)
    return simulator_configuration(deribit_simulator, ssl_ca_cert=_deribit_tls.ca_file)


@pytest.fixture
def deribit(
    deribit_simulator: DeribitSimulator, deribit_configuration: Configuration
) -> Iterator[DeribitTestKit]:
    """The kit: clients on the simulator, faults, and assertions on what the clients did."""
    from openapi_client.testing import DeribitTestKit

    with DeribitTestKit(deribit_simulator, deribit_configuration) as kit:
        yield kit


@pytest.fixture
def deribit_api_client(deribit: DeribitTestKit) -> ApiClient:
    """An HTTP client on the simulator."""
    return deribit.api_client()


@pytest.fixture
def deribit_session_api(deribit_api_client: ApiClient) -> SessionManagementApi:
    """``SessionManagementApi`` over HTTP on the simulator."""
    from openapi_client import SessionManagementApi

    return SessionManagementApi(deribit_api_client)


@pytest.fixture
def deribit_ws_client(deribit: DeribitTestKit) -> WebSocketApiClient:
    """An open WebSocket session on the simulator, with the session's default settings."""
    _needs_websockets("deribit_ws_client")
    return deribit.ws_client()


def _needs_websockets(fixture: str) -> None:
    try:
        import websockets  # noqa: F401
    except ImportError:
        pytest.fail(
            f"{fixture} needs the websockets package: "
            "pip install 'openapi-client-deribit-session[websocket]'",
            pytrace=False,
        )


# The asyncio fixture needs pytest-asyncio (deribit.aio_client() does not).
if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def deribit_aio_client(deribit: DeribitTestKit) -> AsyncIterator[aio.WebSocketApiClient]:
        """An open asyncio WebSocket session on the simulator, with the session's default
        settings, closed after the test (on the test's event loop)."""
        _needs_websockets("deribit_aio_client")
        async with deribit.aio_client() as client:
            yield client
