"""Shared fixtures: a fresh simulator per test, and a client configured against it."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from openapi_client import ApiClient, Configuration, RetryPolicy, SessionManagementApi
from openapi_client.simulator import DeribitSimulator

# -- bytecode ------------------------------------------------------------------------------------
# The suite starts many Python processes (the xdist workers, the command line, the docs' examples,
# notebook kernels, pytest runs of the testing kit). Where PYTHONDONTWRITEBYTECODE is set, every
# one of them compiled the package, and pytest rewrote every test module, from source again: about
# a fifth of the suite's CPU time. The workers (started after this runs in the main process) and
# everything they start write and reuse bytecode in the project's __pycache__ directories.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

#: The simulator's built-in always-valid token and API key.
TOKEN = "sim-token"
CLIENT_ID = "sim-client"
CLIENT_SECRET = "sim-secret"

#: Where the client's floor on token lifetimes is, for the tests that lower it.
SHORTEST_LIFETIME_SETTING = "openapi_client.credentials.MIN_TOKEN_LIFETIME"

#: Retries as the default policy, but with waits short enough for a test suite.
FAST_RETRIES = RetryPolicy(total=3, backoff_factor=0.01, backoff_max=0.05)


# -- no DNS: the suite never asks the system resolver ---------------------------------------------
# Forward lookups go through getaddrinfo, gethostbyname and gethostbyname_ex; reverse ones through
# gethostbyaddr (socket.getfqdn, and so http.server, use it). The processes the tests start have no
# stub; running the suite in a network namespace with only loopback checks them.

#: Names the suite tried to resolve (each test fails on its own).
_RESOLVER_ASKED: list[str] = []
_getaddrinfo = socket.getaddrinfo


def _spelled_address(host: Any) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """``host`` as text (brackets dropped, ``localhost`` as ``127.0.0.1``), and the address it
    spells, None for a name."""
    text = (host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)).strip("[]")
    if text.lower() in ("localhost", "localhost."):
        text = "127.0.0.1"
    try:
        return text, ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return text, None


def _numeric_only_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    """A resolver stub: addresses and ``localhost`` are answered without the system resolver,
    names under ``.invalid`` fail as unknown names; any other name also fails, and the autouse
    fixture below fails the test that asked."""
    if host is None:
        return _getaddrinfo(host, *args, **kwargs)
    text, address = _spelled_address(host)
    if address is None:
        # Names under .invalid never resolve (RFC 6761): the stub says so at once, as a
        # resolver would. Any other name is a test reaching for the network.
        if not text.lower().rstrip(".").endswith(".invalid"):
            _RESOLVER_ASKED.append(text)
        raise socket.gaierror(socket.EAI_NONAME, f"the test suite does not resolve {text!r}")
    return _getaddrinfo(text, *args, **kwargs)


def _loopback_only_gethostbyaddr(host: Any) -> tuple[str, list[str], list[str]]:
    """The reverse lookup ``http.server`` makes when it binds (``socket.getfqdn``): loopback
    addresses are ``localhost`` without the system resolver; any other address fails the test."""
    text, address = _spelled_address(host)
    if address is not None and address.is_loopback:
        return "localhost", [], [text]
    _RESOLVER_ASKED.append(text)
    raise socket.herror(1, f"the test suite does not look up {text!r}")


def _numeric_only_gethostbyname_ex(name: Any) -> tuple[str, list[str], list[str]]:
    address = _numeric_only_getaddrinfo(name, None, socket.AF_INET)[0][4][0]
    return str(name), [], [str(address)]


def _numeric_only_gethostbyname(name: Any) -> str:
    return _numeric_only_gethostbyname_ex(name)[2][0]


socket.getaddrinfo = _numeric_only_getaddrinfo
socket.gethostbyname = _numeric_only_gethostbyname
socket.gethostbyname_ex = _numeric_only_gethostbyname_ex
socket.gethostbyaddr = _loopback_only_gethostbyaddr


@pytest.fixture(autouse=True)
def _no_dns() -> Iterator[None]:
    del _RESOLVER_ASKED[:]
    yield
    if _RESOLVER_ASKED:
        asked = sorted(set(_RESOLVER_ASKED))
        pytest.fail(f"the test asked the system resolver for {asked}: use a loopback address")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # pyproject.toml asks for four xdist workers (--numprocesses 4); without xdist (`-p no:xdist`,
    # or not installed) accept and ignore that option so the suite still runs, in one process.
    if not pluginmanager.has_plugin("xdist"):
        parser.addoption(
            "--numprocesses", dest="numprocesses", help="ignored: pytest-xdist is not active"
        )


@pytest.fixture
def short_token_lifetimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lets the client count on tokens that live less than ``MIN_TOKEN_LIFETIME`` (down to
    0.1 s), so that a test of renewals runs in a second instead of twenty."""
    monkeypatch.setattr(SHORTEST_LIFETIME_SETTING, 0.1)


@pytest.fixture
def simulator() -> Iterator[DeribitSimulator]:
    # legacy_http: the generated-style tests use the heartbeat methods over HTTP, as the published
    # API description does; today's Deribit refuses them there (the simulator's default).
    with DeribitSimulator(legacy_http=True) as sim:
        yield sim


@pytest.fixture
def configuration(simulator: DeribitSimulator) -> Configuration:
    return Configuration(
        host=simulator.url,
        access_token=TOKEN,
        request_timeout=(2.0, 2.0),
        retries=FAST_RETRIES,
    )


@pytest.fixture
def single_attempt(configuration: Configuration) -> None:
    """The default policy retries transient errors; with this fixture each call is one attempt."""
    configuration.retries = 0


@pytest.fixture
def api_client(configuration: Configuration) -> Iterator[ApiClient]:
    with ApiClient(configuration) as client:
        yield client


@pytest.fixture
def api(api_client: ApiClient) -> SessionManagementApi:
    return SessionManagementApi(api_client)


# The WebSocket session's behaviour tests run once per session driver (threaded, asyncio): the
# fixture lives beside the helpers it uses (imported last: they import this module's names).
from test_websocket_support import open_session  # noqa: E402, F401
