"""The test kit as a bot author meets it: the pytest plugin from the package's entry point, its
fixtures, options and marker, and the kit's assertions, which must fail when they should."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openapi_client import ApiClient, ApiException, ApiValueError, SessionManagementApi
from openapi_client.simulator import DeribitSimulator, Fault
from openapi_client.testing import (
    CLIENT_ID,
    DeribitTestKit,
    ManualClock,
    simulator_configuration,
)

pytest_plugins = ["pytester"]

TESTING_PAGE = Path(__file__).resolve().parent.parent / "docs" / "Testing.md"

#: Each subprocess pytest run: a fresh interpreter, the plugin loaded from the entry point only.
SUBPROCESS_TIMEOUT = 45


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)


def run_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a new process, as a user runs it: no conftest, no -p, our entry point only."""
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", *args, timeout=SUBPROCESS_TIMEOUT
    )


# -- the documented bot test, run as a user would --------------------------------------------


README = TESTING_PAGE.parent.parent / "README.md"

#: The documented tests a bot author would copy: every python block that defines a test.
DOCUMENTED_TESTS = [
    (page, block)
    for page in (TESTING_PAGE, README)
    for block in python_blocks(page)
    if "def test_" in block
]


@pytest.mark.parametrize(
    ("page", "block"),
    DOCUMENTED_TESTS,
    ids=[f"{page.name}-{n}" for n, (page, _) in enumerate(DOCUMENTED_TESTS)],
)
def test_the_documented_bot_tests_pass(pytester: pytest.Pytester, page: Path, block: str) -> None:
    assert "deribit" in block
    pytester.makepyfile(test_bot=block)
    result = run_pytest(pytester, "-q")
    result.assert_outcomes(passed=block.count("def test_"))


def test_both_pages_document_a_bot_test() -> None:
    assert {page for page, _ in DOCUMENTED_TESTS} == {TESTING_PAGE, README}


def test_a_broken_bot_fails_with_a_message_that_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_broken="""
        from openapi_client import SessionManagementApi

        def test_forgets_the_heartbeat(deribit):
            session = deribit.ws_client(heartbeat=None, cancel_on_disconnect=True)
            SessionManagementApi(session).private_get_cancel_on_disconnect_get()
            deribit.assert_called("public/set_heartbeat")

        def test_stops_without_logout(deribit):
            deribit.ws_client(heartbeat=10, cancel_on_disconnect=True).close()
            deribit.assert_cancel_on_disconnect_not_fired()
        """
    )
    result = run_pytest(pytester, "-q")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*expected public/set_heartbeat to be called at least once, it was called 0 time(s)*",
            "*expected cancel-on-disconnect not to fire; it fired for connection * (closed)*",
        ]
    )


def test_fixtures_options_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nderibit_time_scale = 0.05\n")
    pytester.makepyfile(
        test_fixtures="""
        import pytest
        from openapi_client import ApiClient, Configuration, SessionManagementApi
        from openapi_client.simulator import DeribitSimulator
        from openapi_client.testing import DeribitTestKit
        from openapi_client.websocket import State, WebSocketApiClient

        def test_every_fixture(deribit_simulator, deribit_configuration, deribit_api_client,
                               deribit_session_api, deribit_ws_client, deribit):
            assert isinstance(deribit_simulator, DeribitSimulator)
            assert deribit_configuration.host == deribit_simulator.url
            assert isinstance(deribit_api_client, ApiClient)
            assert isinstance(deribit_session_api, SessionManagementApi)
            assert isinstance(deribit_ws_client, WebSocketApiClient)
            assert deribit_ws_client.state is State.READY
            assert isinstance(deribit, DeribitTestKit) and deribit.simulator is deribit_simulator
            assert deribit_simulator.time_scale == 0.05

        def test_default_today_deribit(deribit_session_api):
            with pytest.raises(Exception) as raised:
                deribit_session_api.public_set_heartbeat_get(30)
            assert raised.value.error_code == 10030

        @pytest.mark.deribit(legacy_http=True)
        def test_marker(deribit_session_api):
            assert deribit_session_api.public_set_heartbeat_get(30)["result"] == "ok"

        def test_fresh_simulator_per_test(deribit):
            assert deribit.requests() == []
        """
    )
    result = run_pytest(pytester, "-q")
    result.assert_outcomes(passed=4)
    overridden = run_pytest(pytester, "-q", "--deribit-time-scale", "0.2", "-k", "every_fixture")
    overridden.assert_outcomes(failed=1)
    overridden.stdout.fnmatch_lines(["*assert 0.2 == 0.05*"])


def test_tls_option_serves_https_and_wss(pytester: pytest.Pytester) -> None:
    pytest.importorskip("trustme")
    pytester.makepyfile(
        test_tls="""
        def test_tls(deribit, deribit_simulator, deribit_session_api):
            assert deribit_simulator.url.startswith("https://127.0.0.1:")
            assert deribit_simulator.ws_url.startswith("wss://127.0.0.1:")
            assert deribit_session_api.private_get_cancel_on_disconnect_get(scope="account")
            assert deribit.ws_client(heartbeat=None).call("public/test")["result"]
        """
    )
    run_pytest(pytester, "-q", "--deribit-tls").assert_outcomes(passed=1)


def test_bad_settings_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        def test_scale(deribit_simulator):
            pass

        @pytest.mark.deribit(True)
        def test_positional_marker(deribit_simulator):
            pass
        """
    )
    result = run_pytest(pytester, "-q", "--deribit-time-scale", "0", "-k", "scale")
    assert result.ret != 0
    assert "deribit_time_scale must be > 0" in result.stdout.str() + result.stderr.str()
    result = run_pytest(pytester, "-q", "-k", "positional")
    assert result.ret != 0
    assert "takes keyword arguments only" in result.stdout.str() + result.stderr.str()


# -- the kit's assertions, in this process ---------------------------------------------------


@pytest.fixture
def kit() -> DeribitTestKit:
    with DeribitSimulator(legacy_http=True) as simulator, DeribitTestKit(simulator) as kit:
        yield kit


def test_assertions_pass_and_fail_on_what_was_recorded(kit: DeribitTestKit) -> None:
    api = kit.session_api()
    api.public_set_heartbeat_get(30)
    api.private_get_cancel_on_disconnect_get(scope="account")
    assert kit.calls() == [
        "public/set_heartbeat",
        "public/auth",
        "private/get_cancel_on_disconnect",
    ]
    assert len(kit.assert_called("public/set_heartbeat", times=1, transport="http")) == 1
    kit.assert_param("public/set_heartbeat", "interval", 30)
    kit.assert_not_called("private/logout")
    with pytest.raises(AssertionError, match="called 2 time"):
        kit.assert_called("public/set_heartbeat", times=2)
    with pytest.raises(AssertionError, match="over websocket"):
        kit.assert_called("public/set_heartbeat", transport="websocket")
    with pytest.raises(AssertionError, match="not to be called"):
        kit.assert_not_called("public/auth")
    with pytest.raises(AssertionError, match=r"interval='10', it sent '30'"):
        kit.assert_param("public/set_heartbeat", "interval", 10)
    with pytest.raises(AssertionError, match="sent nothing"):
        kit.assert_param("public/set_heartbeat", "type", "x")
    with pytest.raises(AssertionError, match="it was called 0"):
        kit.assert_param("public/disable_heartbeat", "x", True)


def test_injected_faults_reach_only_the_named_method(kit: DeribitTestKit) -> None:
    api = kit.session_api(retries=0)
    kit.inject(Fault.RPC_ERROR, method="public/set_heartbeat", code=11044, message="not_open")
    api.public_disable_heartbeat_get()
    with pytest.raises(ApiException) as raised:
        api.public_set_heartbeat_get(30)
    assert raised.value.error_code == 11044


def test_cancel_on_disconnect_assertions(kit: DeribitTestKit) -> None:
    pytest.importorskip("websockets")
    kit.assert_cancel_on_disconnect_not_fired()
    with pytest.raises(AssertionError, match="fire at least once; it fired 0"):
        kit.assert_cancel_on_disconnect_fired()
    session = kit.ws_client(heartbeat=None, cancel_on_disconnect=True)
    assert [c.cancel_on_disconnect for c in kit.ws_connections] == [True]
    session.close()
    deadline = time.monotonic() + 10
    while not kit.cancel_on_disconnect_events:
        assert time.monotonic() < deadline, "cancel-on-disconnect never fired"
        time.sleep(0.01)
    assert kit.assert_cancel_on_disconnect_fired(reason="closed", times=1)[0].client_id == (
        CLIENT_ID
    )
    with pytest.raises(AssertionError, match=r"reason 'heartbeat'.*seen: \['closed'\]"):
        kit.assert_cancel_on_disconnect_fired(reason="heartbeat")
    with pytest.raises(AssertionError, match=r"not to fire; it fired for connection \d+"):
        kit.assert_cancel_on_disconnect_not_fired()


def test_a_frozen_bots_cancelled_orders(kit: DeribitTestKit) -> None:
    """The watchdog's effect: the session's connection is closed without a logout, and
    cancel-on-disconnect fires with reason "closed"."""
    pytest.importorskip("websockets")
    with pytest.raises(AssertionError, match=r"within 0\.05 s; it never fired"):
        kit.assert_cancelled_on_disconnect(timeout=0.05)
    frozen = kit.ws_client(heartbeat=None, cancel_on_disconnect=True)
    (open_connection,) = kit.ws_connections
    with pytest.raises(
        AssertionError,
        match=rf"still open: connection {open_connection.id} \(cancel-on-disconnect on\)",
    ):
        kit.assert_cancelled_on_disconnect(timeout=0.05)
    frozen.close()  # no logout: what the watchdog does
    event = kit.assert_cancelled_on_disconnect()
    assert (event.reason, event.client_id, event.connection_id) == (
        "closed",
        CLIENT_ID,
        open_connection.id,
    )
    assert kit.assert_cancelled_on_disconnect(connection=open_connection.id) == event
    with pytest.raises(AssertionError, match=r"for connection 99 \(reason 'closed'\)"):
        kit.assert_cancelled_on_disconnect(connection=99, timeout=0.05)
    with pytest.raises(
        AssertionError, match=r"reason 'heartbeat'.*it fired for connection \d+ \(closed\)"
    ):
        kit.assert_cancelled_on_disconnect(reason="heartbeat", timeout=0.05)


def test_a_bot_that_logs_out_is_not_a_frozen_one(kit: DeribitTestKit) -> None:
    pytest.importorskip("websockets")
    kit.ws_client(heartbeat=None, cancel_on_disconnect=True).close(logout=True)
    with pytest.raises(AssertionError, match=r"never fired; logged out \(which keeps the orders\)"):
        kit.assert_cancelled_on_disconnect(timeout=0.2)


def test_an_abrupt_close_without_logout_counts_too(kit: DeribitTestKit) -> None:
    """A watchdog may drop the TCP connection without a close frame."""
    from test_simulator_ws import open_client

    client = open_client(kit.simulator)
    client.auth()
    client.result("private/enable_cancel_on_disconnect")
    client.ws.socket.shutdown(socket.SHUT_RDWR)
    assert kit.assert_cancelled_on_disconnect().reason == "closed"
    client.ws.close()


def test_platform_state_reaches_subscribers(kit: DeribitTestKit) -> None:
    pytest.importorskip("websockets")
    seen: list[object] = []
    session = kit.ws_client(heartbeat=None)
    session.subscribe("platform_state", lambda channel, data: seen.append(data))
    assert kit.publish_platform_state(locked=True) == 1
    deadline = time.monotonic() + 10
    while not seen:
        assert time.monotonic() < deadline, "the notice never arrived"
        time.sleep(0.01)
    assert seen == [{"locked": True}]


def test_kit_closes_what_it_opened_and_copies_settings() -> None:
    with DeribitSimulator(legacy_http=True) as simulator:
        base = simulator_configuration(simulator, retries=0)
        with DeribitTestKit(simulator, base) as kit:
            client = kit.api_client(access_token="sim-token")
            assert base.access_token is None and client.configuration.access_token == "sim-token"
            assert kit.configuration().retries == 0
        assert repr(kit).startswith("DeribitTestKit(")
        with pytest.raises(ApiValueError, match="closed"):
            SessionManagementApi(client).public_disable_heartbeat_get()
        assert isinstance(client, ApiClient)


def test_manual_clock_drives_token_expiry_and_credits() -> None:
    clock = ManualClock()
    assert clock() == 1000.0 and clock.advance(0.5) == 1000.5 and "1000.5" in repr(clock)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    with (
        DeribitSimulator(
            clock=clock, token_ttl=60, rate_limit=True, rate_limit_burst=2, rate_limit_per_second=1
        ) as simulator,
        DeribitTestKit(simulator) as kit,
    ):
        api = kit.session_api(retries=0)
        for _ in range(2):  # the account's whole burst (public/auth is charged to the IP)
            api.private_get_cancel_on_disconnect_get(scope="account")
        with pytest.raises(ApiException) as raised:
            api.private_get_cancel_on_disconnect_get(scope="account")
        assert raised.value.error_code == 10028
        clock.advance(1.0)  # one credit back, exactly
        api.private_get_cancel_on_disconnect_get(scope="account")
        clock.advance(61.0)  # the token expired; the pool is full again
        api.private_get_cancel_on_disconnect_get(scope="account")
        kit.assert_called("public/auth", times=2)


PLUGIN_ALONE = """
import sys
import openapi_client.testing.plugin
watched = ("openapi_client.", "urllib3", "websockets")
print(sorted(name for name in sys.modules if name.startswith(watched)))
from openapi_client.testing import DeribitTestKit  # the kit's names are there when asked for
print("openapi_client.simulator" in sys.modules)
"""


def test_the_plugin_loads_nothing_until_a_fixture_is_used() -> None:
    """Every pytest run of a project with the library installed imports the plugin: it costs
    that run neither the simulator nor the clients (about 40 ms) until a test asks for them."""
    ran = subprocess.run(
        [sys.executable, "-c", PLUGIN_ALONE], capture_output=True, text=True, timeout=30, check=True
    )
    loaded, simulator_after = ran.stdout.splitlines()
    assert loaded == str(
        ["openapi_client._version", "openapi_client.testing", "openapi_client.testing.plugin"]
    )
    assert simulator_after == "True"
