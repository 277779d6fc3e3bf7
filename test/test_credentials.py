"""The credential lifecycle, end to end against the simulator over loopback sockets.

From an API key (or a token, or a token provider) to an ``Authorization`` header on every private
call: lazy, cached and refreshed tokens, re-authentication after ``13009``, thread safety, the
per-request signature, and secrets that stay out of the wire, the logs and exception text.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from conftest import FAST_RETRIES, SHORTEST_LIFETIME_SETTING

from openapi_client import (
    ApiClient,
    ApiException,
    ApiValueError,
    AuthenticationApi,
    Configuration,
    SessionManagementApi,
    signing,
)
from openapi_client.configuration import PRODUCTION_HOST, TESTNET_HOST
from openapi_client.credentials import Token, TokenManager
from openapi_client.endpoint import Endpoint
from openapi_client.simulator import DeribitSimulator, RecordedRequest
from openapi_client.testing import ManualClock

pytestmark = pytest.mark.timeout(30)

def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CLIENT_ID = "bot-client"
#: Distinctive, so that a leak anywhere is found by a plain substring search.
SECRET = "Sx9-q4Lm7TzW2vRk"
#: Not loopback to the client's plain-http guard, yet connecting reaches this machine (0.0.0.0
#: is "this host"), where nothing listens on the port: no name to resolve, nothing remote.
INSECURE_HOST = f"http://0.0.0.0:{refused_port()}/api/v2"

KEY_METHODS = ("client_signature", "client_credentials", "signature")


# -- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def simulator(token_ttl: float = 900.0) -> Iterator[DeribitSimulator]:
    with DeribitSimulator(
        credentials={CLIENT_ID: SECRET}, token_ttl=token_ttl, legacy_http=True
    ) as sim:
        yield sim


@pytest.fixture
def sim() -> Iterator[DeribitSimulator]:
    with simulator() as running:
        yield running


def key_configuration(sim: DeribitSimulator, **settings: Any) -> Configuration:
    values: dict[str, Any] = {
        "host": sim.url,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "request_timeout": (2.0, 2.0),
        "retries": FAST_RETRIES,
    }
    values.update(settings)
    return Configuration(**values)


@contextlib.contextmanager
def session(configuration: Configuration) -> Iterator[SessionManagementApi]:
    with ApiClient(configuration) as client:
        yield SessionManagementApi(client)


def private_call(api: SessionManagementApi) -> dict[str, Any]:
    result: dict[str, Any] = api.private_get_cancel_on_disconnect_get("account")
    assert result["result"] == {"scope": "account", "enabled": False}
    return result


def auth_requests(sim: DeribitSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if r.path.endswith("/public/auth")]


def grants(sim: DeribitSimulator) -> list[str]:
    return [r.query.get("grant_type", "") for r in auth_requests(sim)]


def private_requests(sim: DeribitSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if "/private/" in r.path]


def bearer_of(request: RecordedRequest) -> str:
    header = request.header("Authorization") or ""
    assert header.startswith("Bearer "), "expected a bearer token"
    return header[len("Bearer ") :]


def is_signed(request: RecordedRequest) -> bool:
    return (request.header("Authorization") or "").startswith("deri-hmac-sha256 ")


def signature_fields(request: RecordedRequest) -> dict[str, str]:
    value = (request.header("Authorization") or "").split(" ", 1)[1]
    return dict(part.split("=", 1) for part in value.split(","))


def issued_tokens(sim: DeribitSimulator) -> list[str]:
    """Every bearer token the client sent (the simulator's log is the only place they show)."""
    return [bearer_of(r) for r in private_requests(sim)]


def everything_logged(request: RecordedRequest) -> str:
    return "\n".join(
        [request.target, *request.query.keys(), *request.query.values()]
        + [f"{name}: {value}" for name, value in request.headers.items()]
    )


def exception_text(error: BaseException) -> str:
    """``str``, ``repr``, ``args`` and the full formatted traceback with its chained causes."""
    return "\n".join(
        [
            str(error),
            repr(error),
            repr(error.args),
            *traceback.format_exception(type(error), error, error.__traceback__),
        ]
    )


def shifted_clock(offset_ms: int) -> Callable[[], int]:
    real = signing.now_ms

    def now_ms() -> int:
        return real() + offset_ms

    return now_ms


# -- every method, end to end ------------------------------------------------------------------


@pytest.mark.parametrize("method", KEY_METHODS)
def test_each_key_method_makes_private_calls(sim: DeribitSimulator, method: str) -> None:
    with session(key_configuration(sim, auth_method=method)) as api:
        for _ in range(3):
            private_call(api)
    headers = [r.header("Authorization") or "" for r in private_requests(sim)]
    assert len(headers) == 3
    if method == "signature":
        assert grants(sim) == []
        assert all(h.startswith("deri-hmac-sha256 id=bot-client,") for h in headers)
        assert len(set(headers)) == 3, "every request is signed afresh"
    else:
        assert grants(sim) == [method]
        assert len({bearer_of(r) for r in private_requests(sim)}) == 1


def test_client_signature_is_the_default_method(sim: DeribitSimulator) -> None:
    configuration = key_configuration(sim)
    assert configuration.auth_method == "client_signature"
    with session(configuration) as api:
        private_call(api)
    (auth,) = auth_requests(sim)
    assert auth.query["grant_type"] == "client_signature"
    assert "client_secret" not in auth.query
    timestamp, nonce = int(auth.query["timestamp"]), auth.query["nonce"]
    assert auth.query["signature"] == signing.sign(SECRET, timestamp, nonce, "")


def test_access_token_takes_precedence_over_the_key(sim: DeribitSimulator) -> None:
    token = sim.issue_token(CLIENT_ID)
    with session(key_configuration(sim, access_token=token)) as api:
        private_call(api)
        private_call(api)
    assert grants(sim) == []
    assert issued_tokens(sim) == [token, token]


def test_token_provider_supplies_every_token(sim: DeribitSimulator) -> None:
    calls: list[str] = []

    def provider() -> str:
        calls.append(sim.issue_token(CLIENT_ID))
        return calls[-1]

    with session(key_configuration(sim, token_provider=provider)) as api:
        private_call(api)
        private_call(api)
        api.public_set_heartbeat_get(10)
    assert grants(sim) == []
    assert issued_tokens(sim) == calls, "asked once per private call, not for public calls"


def test_token_provider_is_asked_again_once_after_13009(sim: DeribitSimulator) -> None:
    first = sim.issue_token(CLIENT_ID)
    handed_out: list[str] = []

    def provider() -> str:
        # Like a cache elsewhere that learns of the new token one call late.
        token = first if len(handed_out) < 2 else sim.issue_token(CLIENT_ID)
        handed_out.append(token)
        return token

    with session(key_configuration(sim, token_provider=provider)) as api:
        private_call(api)
        sim.revoke_tokens()
        private_call(api)
    assert len(handed_out) == 3
    assert issued_tokens(sim) == handed_out
    assert grants(sim) == []


def test_from_env_reads_the_key(sim: DeribitSimulator) -> None:
    environ = {
        "DERIBIT_CLIENT_ID": CLIENT_ID,
        "DERIBIT_CLIENT_SECRET": SECRET,
        "DERIBIT_HOST": sim.url,
    }
    configuration = Configuration.from_env(environ, retries=FAST_RETRIES)
    assert configuration.auth_method == "client_signature"
    assert SECRET not in repr(configuration)
    with session(configuration) as api:
        private_call(api)
    assert grants(sim) == ["client_signature"]


def test_from_env_access_token_wins_and_method_is_read(sim: DeribitSimulator) -> None:
    token = sim.issue_token(CLIENT_ID)
    base = {"DERIBIT_CLIENT_ID": CLIENT_ID, "DERIBIT_CLIENT_SECRET": SECRET}
    for extra in ({"DERIBIT_ACCESS_TOKEN": token}, {"DERIBIT_AUTH_METHOD": "signature"}):
        with session(Configuration.from_env({**base, **extra}, host=sim.url)) as api:
            private_call(api)
    first, second = private_requests(sim)
    assert bearer_of(first) == token
    assert (second.header("Authorization") or "").startswith("deri-hmac-sha256 ")
    assert grants(sim) == []


@pytest.mark.parametrize(
    ("switch", "host"),
    [
        ("1", TESTNET_HOST),
        ("true", TESTNET_HOST),
        ("YES", TESTNET_HOST),
        ("0", PRODUCTION_HOST),
        ("", PRODUCTION_HOST),
        (None, PRODUCTION_HOST),
    ],
)
def test_from_env_testnet_switch(switch: str | None, host: str) -> None:
    environ = {"DERIBIT_CLIENT_ID": CLIENT_ID, "DERIBIT_CLIENT_SECRET": SECRET}
    if switch is not None:
        environ["DERIBIT_TESTNET"] = switch
    configuration = Configuration.from_env(environ)
    assert configuration.host == host
    assert configuration.testnet == (host == TESTNET_HOST)
    assert (configuration.client_id, configuration.client_secret) == (CLIENT_ID, SECRET)


# -- AuthenticationApi.public_auth_get -------------------------------------------------------


def test_public_auth_get_with_every_grant(sim: DeribitSimulator) -> None:
    """Session-scoped grants (``scope=session:NAME``): their tokens work on any connection."""
    scope = "session:every-grant"
    with ApiClient(Configuration(host=sim.url, retries=0)) as client:
        auth = AuthenticationApi(client)
        answer = auth.public_auth_get(
            "client_credentials", client_id=CLIENT_ID, client_secret=SECRET, scope=scope
        )
        first = answer["result"]
        assert set(first) >= {"access_token", "refresh_token", "expires_in", "scope", "token_type"}
        assert first["expires_in"] == 900
        assert scope in first["scope"].split()

        timestamp, nonce = signing.now_ms(), signing.new_nonce()
        data, status, headers = auth.public_auth_get_with_http_info(
            "client_signature",
            client_id=CLIENT_ID,
            timestamp=timestamp,
            nonce=nonce,
            data="hello",
            signature=signing.sign(SECRET, timestamp, nonce, "hello"),
            scope=scope,
        )
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        second = data["result"]

        refreshed = auth.public_auth_get(
            grant_type="refresh_token", refresh_token=first["refresh_token"]
        )["result"]
        with pytest.raises(ApiException) as reused:
            auth.public_auth_get(grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert reused.value.error_code == 13009, "refresh tokens rotate"

    tokens = [first["access_token"], second["access_token"], refreshed["access_token"]]
    assert len(set(tokens)) == 3
    for token in tokens:  # each on a new client, so on a new connection
        with session(Configuration(host=sim.url, access_token=token, retries=0)) as api:
            private_call(api)
    assert grants(sim) == [
        "client_credentials",
        "client_signature",
        "refresh_token",
        "refresh_token",
    ]


def test_grant_without_scope_over_http_creates_a_session(sim: DeribitSimulator) -> None:
    """As on Deribit: an HTTP grant without ``scope`` creates a new ``rest-<id>`` session, whose
    token works on other connections and counts toward the key's 16 sessions."""
    configuration = Configuration(host=sim.url, retries=0)
    with ApiClient(configuration) as client:
        granted = AuthenticationApi(client).public_auth_get(
            "client_credentials", client_id=CLIENT_ID, client_secret=SECRET
        )["result"]
    assert "session:rest-1" in granted["scope"].split()
    elsewhere = Configuration(host=sim.url, access_token=granted["access_token"], retries=0)
    with session(elsewhere) as api:
        private_call(api)  # another connection, after the first closed
    assert [(s.client_id, s.name) for s in sim.sessions] == [(CLIENT_ID, "rest-1")]


# -- lazy, cached, and following the configuration --------------------------------------------


def test_token_is_fetched_lazily_and_never_for_public_calls(sim: DeribitSimulator) -> None:
    with session(key_configuration(sim)) as api:
        api.public_set_heartbeat_get(10)
        api.public_disable_heartbeat_get()
        assert sim.auth_requests == 0
        assert all(r.header("Authorization") is None for r in sim.requests)
        private_call(api)
        assert sim.auth_requests == 1
        api.public_set_heartbeat_get(10)
    assert sim.requests[-1].header("Authorization") is None
    assert grants(sim) == ["client_signature"]


def test_token_is_cached_across_calls(sim: DeribitSimulator) -> None:
    with session(key_configuration(sim)) as api:
        for _ in range(25):
            private_call(api)
    assert sim.auth_requests == 1
    assert len(set(issued_tokens(sim))) == 1
    assert len(private_requests(sim)) == 25


def test_configuration_changes_apply_at_once() -> None:
    other_id, other_secret = "other-client", "Other-S3cret-9x"
    credentials = {CLIENT_ID: SECRET, other_id: other_secret}
    with DeribitSimulator(credentials=credentials, legacy_http=True) as sim:
        configuration = key_configuration(sim)
        with session(configuration) as api:
            private_call(api)
            configuration.access_token = sim.issue_token(CLIENT_ID)
            private_call(api)
            configuration.access_token = None
            private_call(api)  # the cached token again
            configuration.client_id, configuration.client_secret = other_id, other_secret
            private_call(api)
            configuration.auth_method = "signature"
            private_call(api)
        tokens = [r.header("Authorization") or "" for r in private_requests(sim)]
        assert [r.query.get("client_id") for r in auth_requests(sim)] == [CLIENT_ID, other_id]
        assert tokens[0] == tokens[2] != tokens[1]
        assert tokens[3] not in tokens[:3]
        assert tokens[4].startswith("deri-hmac-sha256 id=other-client,")


def test_refresh_margin(sim: DeribitSimulator) -> None:
    """``token_refresh_margin`` seconds before expiry, at most a fifth of the lifetime.

    The manager runs on a hand-driven monotonic clock; its requests go over the wire.
    """
    now = [0.0]
    configuration = key_configuration(sim, token_refresh_margin=100.0)
    with ApiClient(configuration) as client:
        auth = AuthenticationApi(client)

        def fetch(endpoint: Endpoint, make_args: Any) -> dict[str, Any]:
            assert endpoint.path == "/public/auth"
            answer: dict[str, Any] = auth.public_auth_get(**make_args())
            return answer

        manager = TokenManager(configuration, fetch, clock=lambda: now[0])
        first = manager.access_token()  # lives 900 s; margin min(100, 180) = 100
        now[0] = 799.9
        assert manager.access_token() == first
        configuration.token_refresh_margin = 500.0  # for the next token: capped at 180 s
        now[0] = 800.1
        second = manager.access_token()
        assert second != first
        now[0] = 800.1 + 719.9
        assert manager.access_token() == second
        now[0] = 800.1 + 720.1
        third = manager.access_token()
        assert third != second
        now[0] = 10_000.0  # long expired: renewed before use
        fourth = manager.access_token()
        assert fourth != third
    assert grants(sim) == ["client_signature"] + ["refresh_token"] * 3


# -- expiry, refresh, fallback, re-authentication --------------------------------------------


@contextlib.contextmanager
def on_manual_clock(
    token_ttl: float = 1.0, **settings: Any
) -> Iterator[tuple[DeribitSimulator, SessionManagementApi, ManualClock]]:
    """A simulator and a client whose token lifetimes run on one hand-driven clock."""
    clock = ManualClock()
    with pytest.MonkeyPatch.context() as patch, DeribitSimulator(
        credentials={CLIENT_ID: SECRET}, token_ttl=token_ttl, legacy_http=True, clock=clock
    ) as sim, ApiClient(key_configuration(sim, **settings)) as client:
        patch.setattr(SHORTEST_LIFETIME_SETTING, 0.1)  # tokens of a second, counted on
        client.credentials.clock = clock
        yield sim, SessionManagementApi(client), clock


def test_short_lived_tokens_are_refreshed_ahead_of_expiry() -> None:
    """Tokens live 1 s; three threads call in rounds while the clock moves 1/16 s a round for
    3.5 s: no call fails, none is repeated, and a refresh comes once the token has a fifth of
    its life left (at 0.8125 s, 1.625 s, 2.4375 s and 3.25 s)."""
    workers, rounds, step = 3, 56, 0.0625
    with on_manual_clock() as (sim, api, clock):
        errors: list[BaseException] = []
        turn = threading.Barrier(workers + 1, timeout=10)

        def work() -> None:
            for _ in range(rounds):
                try:
                    private_call(api)
                except BaseException as error:  # reported below
                    errors.append(error)
                turn.wait()  # the round is over
                turn.wait()  # the clock has moved

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for _ in range(rounds):
            turn.wait()
            clock.advance(step)
            turn.wait()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert len(private_requests(sim)) == workers * rounds, "no call needed a second attempt"
        assert grants(sim) == ["client_signature"] + ["refresh_token"] * 4


def test_refused_refresh_falls_back_to_the_key() -> None:
    with on_manual_clock() as (sim, api, clock):
        private_call(api)
        sim.revoke_tokens(refresh_tokens=True)
        clock.advance(0.9)  # inside the refresh margin (the last 0.2 s of the token's life)
        private_call(api)
        private_call(api)
        assert grants(sim) == ["client_signature", "refresh_token", "client_signature"]
        first, second, third = issued_tokens(sim)
        assert first != second == third
        assert len(private_requests(sim)) == 3


def test_failed_early_refresh_keeps_the_valid_token(caplog: pytest.LogCaptureFixture) -> None:
    """A refresh that fails while the token is still valid must not fail the call."""
    with on_manual_clock(retries=0) as (sim, api, clock):
        private_call(api)
        clock.advance(0.85)
        # The refresh grant is refused, and so is the API key after it.
        sim.inject(
            "rpc_error", 2, path="/public/auth", code=13028, message="temporarily_unavailable"
        )
        with caplog.at_level(logging.WARNING, logger="openapi_client"):
            private_call(api)
        assert grants(sim) == ["client_signature", "refresh_token", "client_signature"]
        first, second = issued_tokens(sim)
        assert first == second, "the still-valid token was used"
        assert "keeping it" in caplog.text
        private_call(api)  # no new try before the retry interval
        assert len(grants(sim)) == 3
        clock.advance(0.2)  # past the first token's expiry; the faults are used up
        private_call(api)
        assert grants(sim)[3:] == ["refresh_token"]
        assert issued_tokens(sim)[3] != first
    for token in issued_tokens(sim):
        assert token not in caplog.text


def test_expired_token_is_renewed_before_use_not_after_a_refusal() -> None:
    with on_manual_clock() as (sim, api, clock):
        private_call(api)
        clock.advance(5.0)  # long past expiry
        private_call(api)
        assert grants(sim) == ["client_signature", "refresh_token"]
        assert len(private_requests(sim)) == 2, "no request with the expired token"


def test_revoked_token_reauthenticates_once_and_repeats_the_call(sim: DeribitSimulator) -> None:
    with session(key_configuration(sim)) as api:
        private_call(api)
        sim.revoke_tokens()
        sim.clear_requests()
        private_call(api)
        assert sim.auth_requests == 1
        old, new = issued_tokens(sim)
        assert old != new
        private_call(api)
    assert sim.auth_requests == 1
    assert len(private_requests(sim)) == 3


def test_persistent_13009_is_raised_after_one_reauthentication(sim: DeribitSimulator) -> None:
    with session(key_configuration(sim)) as api:
        private_call(api)
        sim.clear_requests()
        sim.inject(
            "rpc_error",
            5,
            path="/private/get_cancel_on_disconnect",
            code=13009,
            message="unauthorized",
        )
        with pytest.raises(ApiException) as raised:
            private_call(api)
    assert raised.value.error_code == 13009
    assert len(private_requests(sim)) == 2
    assert sim.auth_requests == 1


def test_fixed_bad_access_token_is_not_retried(sim: DeribitSimulator) -> None:
    configuration = key_configuration(sim, access_token="not-a-valid-token")
    with session(configuration) as api, pytest.raises(ApiException) as raised:
        private_call(api)
    assert raised.value.error_code == 13009
    assert len(sim.requests) == 1
    assert sim.auth_requests == 0


# -- threads ---------------------------------------------------------------------------------


def test_sixteen_threads_share_one_public_auth(sim: DeribitSimulator) -> None:
    workers = 16
    # Slow the token answer down so that every thread is waiting for it at once.
    sim.inject("delay", path="/public/auth", seconds=0.2)
    barrier = threading.Barrier(workers, timeout=5)
    results: list[Any] = []
    errors: list[BaseException] = []
    with ApiClient(key_configuration(sim, connection_pool_maxsize=workers)) as client:
        api = SessionManagementApi(client)

        def first_call() -> None:
            try:
                barrier.wait()
                results.append(private_call(api))
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=first_call) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(results) == workers
    assert sim.auth_requests == 1
    assert len(set(issued_tokens(sim))) == 1


# -- failures with clear, secret-free errors -------------------------------------------------


@pytest.mark.parametrize("method", ["client_signature", "client_credentials"])
def test_wrong_secret_gives_13004_without_the_secret(sim: DeribitSimulator, method: str) -> None:
    wrong = "Wr0ng-Secret-7Hq2"
    configuration = key_configuration(sim, client_secret=wrong, auth_method=method)
    with session(configuration) as api, pytest.raises(ApiException) as raised:
        private_call(api)
    error = raised.value
    assert error.error_code == 13004
    assert "13004" in str(error)
    hint = "refused the same way: check the client id and the client secret or private key"
    assert hint in str(error)
    text = exception_text(error)
    assert wrong not in text
    assert SECRET not in text
    assert sim.auth_requests == 1, "13004 is not retried"
    assert private_requests(sim) == []


@pytest.mark.parametrize("offset_s", [120, -120])
@pytest.mark.parametrize("method", ["client_signature", "signature"])
def test_clock_outside_the_signature_window_is_a_clear_error(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch, method: str, offset_s: int
) -> None:
    monkeypatch.setattr(signing, "now_ms", shifted_clock(offset_s * 1000))
    configuration = key_configuration(sim, auth_method=method)
    with session(configuration) as api, pytest.raises(ApiException) as raised:
        private_call(api)
    error = raised.value
    text = str(error).lower()
    assert "clock" in text and "timestamp" in text, str(error)
    assert ("ahead" if offset_s > 0 else "behind") in text
    assert SECRET not in exception_text(error)
    assert len(sim.requests) == 1, "a signature outside the window is not retried"


@pytest.mark.parametrize("method", ["client_signature", "signature"])
def test_clock_error_is_explained_by_the_client(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Not only the server's wording: the client measures the skew from the answer's usIn."""
    monkeypatch.setattr(signing, "now_ms", shifted_clock(-120_000))
    configuration = key_configuration(sim, auth_method=method)
    with session(configuration) as api, pytest.raises(ApiException) as raised:
        private_call(api)
    assert raised.value.error_code == 13004  # invalid_credentials, as Deribit answers signatures
    assert re.search(r"this machine's clock is 1[12]\d s behind Deribit's", str(raised.value))


def test_a_refused_request_signature_is_explained_by_the_clock_too(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deribit refuses a bad ``deri-hmac-sha256`` signature with 13004 rather than 13009."""
    monkeypatch.setattr(signing, "now_ms", shifted_clock(-120_000))
    sim.inject(
        "rpc_error", path="/private/get_cancel_on_disconnect", code=13004,
        message="invalid_credentials",
    )
    with session(key_configuration(sim, auth_method="signature")) as api:
        with pytest.raises(ApiException) as raised:
            private_call(api)
    assert raised.value.error_code == 13004
    assert re.search(r"this machine's clock is 1[12]\d s behind Deribit's", str(raised.value))
    assert len(sim.requests) == 1


def test_clock_inside_the_window_still_works(
    sim: DeribitSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "now_ms", shifted_clock(30_000))
    for method in ("client_signature", "signature"):
        with session(key_configuration(sim, auth_method=method)) as api:
            private_call(api)
    assert len(private_requests(sim)) == 2


def test_nonces_never_repeat(sim: DeribitSimulator) -> None:
    with session(key_configuration(sim, auth_method="signature")) as api:
        for _ in range(200):
            private_call(api)
    for _ in range(20):
        with session(key_configuration(sim)) as api:
            private_call(api)
    nonces = [signature_fields(r)["nonce"] for r in private_requests(sim) if is_signed(r)]
    nonces += [r.query["nonce"] for r in auth_requests(sim)]
    assert len(nonces) == 220
    assert len(set(nonces)) == 220


def test_signature_header_shape(sim: DeribitSimulator) -> None:
    before = time.time()
    with session(key_configuration(sim, auth_method="signature")) as api:
        private_call(api)
    (request,) = private_requests(sim)
    header = request.header("Authorization") or ""
    match = re.fullmatch(
        r"deri-hmac-sha256 id=(?P<id>[^,]+),ts=(?P<ts>\d{13}),sig=(?P<sig>[0-9a-f]{64}),"
        r"nonce=(?P<nonce>[A-Za-z0-9_-]{16,})",
        header,
    )
    assert match is not None, "header has the documented shape"
    assert match["id"] == CLIENT_ID
    assert before - 1 <= int(match["ts"]) / 1000 <= time.time() + 1
    data = signing.request_data("GET", request.target)
    assert data == "GET\n/api/v2/private/get_cancel_on_disconnect?scope=account\n\n"
    assert match["sig"] == signing.sign(SECRET, int(match["ts"]), match["nonce"], data)
    assert sim.auth_requests == 0


# -- secrets ---------------------------------------------------------------------------------


def test_default_method_never_sends_the_secret(sim: DeribitSimulator) -> None:
    with session(key_configuration(sim)) as api:
        private_call(api)
        api.public_set_heartbeat_get(10)
        sim.revoke_tokens(refresh_tokens=True)
        private_call(api)  # 13009, refresh refused, signed grant again
    assert grants(sim) == ["client_signature", "refresh_token", "client_signature"]
    assert len(sim.requests) >= 6
    for request in sim.requests:
        logged = everything_logged(request)
        assert SECRET not in logged
        assert SECRET.lower() not in logged.lower()
    for token in issued_tokens(sim):
        assert all(token not in r.target for r in sim.requests), "tokens never go in a URL"


def test_client_credentials_keeps_secret_and_tokens_out_of_logs(
    sim: DeribitSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    configuration = key_configuration(sim, auth_method="client_credentials", debug=True)
    try:
        with session(configuration) as api:
            sim.inject("reset", path="/public/auth")  # retried: logs the failure
            private_call(api)
            sim.revoke_tokens()
            private_call(api)
            sim.revoke_tokens(refresh_tokens=True)
            private_call(api)
        wrong = key_configuration(sim, auth_method="client_credentials", client_secret=SECRET + "x")
        with session(wrong) as api, pytest.raises(ApiException) as refused:
            private_call(api)
    finally:
        configuration.debug = False
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert "public/auth" in messages, "the DEBUG lines were captured"
    assert SECRET not in messages
    assert SECRET not in exception_text(refused.value)
    refresh_tokens = [
        r.query["refresh_token"] for r in auth_requests(sim) if "refresh_token" in r.query
    ]
    assert refresh_tokens
    for token in issued_tokens(sim) + refresh_tokens:
        assert token not in messages


def test_transport_failure_during_auth_keeps_the_secret_out(sim: DeribitSimulator) -> None:
    sim.inject("reset", path="/public/auth")
    configuration = key_configuration(sim, auth_method="client_credentials", retries=0)
    with session(configuration) as api, pytest.raises(ApiException) as raised:
        private_call(api)
    assert raised.value.status == 0
    assert SECRET not in exception_text(raised.value)


def test_reprs_show_no_credential(sim: DeribitSimulator) -> None:
    configuration = key_configuration(sim, access_token="tok-abc-123")
    token = Token("acc-xyz-789", "ref-uvw-456", 10.0, 8.0)
    with ApiClient(configuration) as client:
        shown = " ".join(
            [
                repr(configuration),
                str(configuration),
                repr(client),
                repr(client.credentials),
                repr(token),
                str(token),
                configuration.to_debug_report(),
            ]
        )
    for secret in (SECRET, "tok-abc-123", "acc-xyz-789", "ref-uvw-456"):
        assert secret not in shown


# -- refused before any request --------------------------------------------------------------


@pytest.mark.parametrize("method", KEY_METHODS)
def test_key_over_plain_http_is_refused_before_connecting(method: str) -> None:
    configuration = Configuration(
        host=INSECURE_HOST,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        auth_method=method,
        retries=0,
        request_timeout=(1.0, 1.0),
    )
    with session(configuration) as api:
        with pytest.raises(ApiValueError) as refused:
            private_call(api)
        assert "http" in str(refused.value) and "allow_insecure_http" in str(refused.value)
        assert SECRET not in exception_text(refused.value)

        configuration.allow_insecure_http = True
        with pytest.raises(ApiException) as failed:
            private_call(api)
    assert failed.value.status == 0, "it tried to connect, and could not"
    assert SECRET not in exception_text(failed.value)


BROKEN_TOKENS = ["two words", "line\nbreak", "crlf\r\nX-Injected: 1", "tab\there", "nul\x00", " "]


@pytest.mark.parametrize("bad", BROKEN_TOKENS)
def test_token_with_whitespace_or_controls_is_refused_when_set(
    sim: DeribitSimulator, bad: str
) -> None:
    configuration = key_configuration(sim)
    with pytest.raises(ApiValueError) as refused:
        configuration.access_token = bad
    message = str(refused.value)
    assert "Configuration.access_token" in message and "whitespace" in message
    assert bad.strip() not in message or not bad.strip()
    assert configuration.access_token is None, "the refused value was not kept"
    with pytest.raises(ApiValueError, match="whitespace"):
        key_configuration(sim, access_token=bad)
    assert sim.requests == []


@pytest.mark.parametrize("bad", BROKEN_TOKENS)
def test_token_provider_handing_out_a_broken_token_is_refused_before_sending(
    sim: DeribitSimulator, bad: str
) -> None:
    with session(key_configuration(sim, token_provider=lambda: bad)) as api:
        with pytest.raises(ApiValueError) as refused:
            private_call(api)
    message = str(refused.value)
    assert "token_provider" in message and "whitespace" in message
    assert bad.strip() not in message or not bad.strip()
    assert sim.requests == []


@pytest.mark.parametrize(
    "args",
    [
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET},
        {"grant_type": "refresh_token", "refresh_token": "a-refresh-token"},
    ],
    ids=["client_credentials", "refresh_token"],
)
def test_public_auth_get_over_plain_http_is_refused(args: dict[str, str]) -> None:
    configuration = Configuration(host=INSECURE_HOST, retries=0, request_timeout=(1.0, 1.0))
    with ApiClient(configuration) as client, pytest.raises(ApiValueError):
        AuthenticationApi(client).public_auth_get(**args)


def test_a_retried_signed_grant_signs_again_with_a_new_nonce(sim: DeribitSimulator) -> None:
    """A lost public/auth answer is retried with a fresh timestamp, nonce and signature."""
    sim.inject("reset", count=1, path="/public/auth")
    with session(key_configuration(sim)) as api:
        assert private_call(api)["result"] == {"scope": "account", "enabled": False}
    grants = auth_requests(sim)
    assert len(grants) == 2
    assert grants[0].query["nonce"] != grants[1].query["nonce"]
    assert grants[0].query["signature"] != grants[1].query["signature"]


# -- narrower permissions ---------------------------------------------------------------------


def test_scope_asks_for_narrower_permissions_with_every_grant(sim: DeribitSimulator) -> None:
    from test_websocket_support import session as ws_session

    configuration = key_configuration(sim, scope="account:read  trade:none")
    assert configuration.scope == "account:read trade:none"
    assert "scope='account:read trade:none'" in repr(configuration)
    with session(configuration) as api:
        private_call(api)
    ws_session(configuration).close()
    scopes = [(r.transport, r.query.get("scope")) for r in auth_requests(sim)]
    asked = "session:openapi-client account:read trade:none"
    assert scopes == [("http", asked), ("websocket", asked)]
    sim.clear_requests()
    configuration.session_name = None
    with session(configuration) as api:
        private_call(api)
    assert [r.query.get("scope") for r in auth_requests(sim)] == ["account:read trade:none"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "must name at least one permission"),
        ("account", "'account' is not a permission; use AREA:LEVEL"),
        ("account:write", "'account:write' is not a permission"),
        ("orders:read", "'orders:read' is not a permission"),
        ("account:read account:none", "names 'account' twice"),
        ("session:bot", "'session:bot' is set with session_name"),
        ("connection account:read", "'connection' is set with session_name"),
    ],
)
def test_scope_is_checked_when_set(value: str, says: str) -> None:
    with pytest.raises(ApiValueError, match=re.escape(says)):
        Configuration(scope=value)
    configuration = Configuration(scope="wallet:none")
    with pytest.raises(ApiValueError, match=re.escape(says)):
        configuration.scope = value
    assert configuration.scope == "wallet:none"


def test_scope_must_be_text() -> None:
    from openapi_client import ApiTypeError

    with pytest.raises(ApiTypeError, match=r"Configuration\.scope must be a string or None"):
        Configuration(scope=["account:read"])  # type: ignore[arg-type]


# -- 13021 forbidden: which permission --------------------------------------------------------


def test_forbidden_names_the_missing_permission_and_the_tokens_scope(
    sim: DeribitSimulator,
) -> None:
    sim.inject(
        "rpc_error",
        path="/private/enable_cancel_on_disconnect",
        code=13021,
        message="forbidden",
    )
    with session(key_configuration(sim, scope="account:read")) as api:
        with pytest.raises(ApiException) as refused:
            api.private_enable_cancel_on_disconnect_get(scope="account")
    error = refused.value
    assert error.error_code == 13021
    headline = str(error).splitlines()[0]
    assert headline.startswith(
        "Deribit error 13021: forbidden; private/enable_cancel_on_disconnect needs the permission "
        "account:read_write, and the token's scope '"
    )
    assert "' lacks account:read_write: ask for it with Configuration.scope" in headline
    assert len(private_requests(sim)) == 1, "13021 is not retried"


def test_forbidden_with_a_token_from_elsewhere_names_the_permission(
    sim: DeribitSimulator,
) -> None:
    sim.inject(
        "rpc_error", path="/private/get_cancel_on_disconnect", code=13021, message="forbidden"
    )
    configuration = key_configuration(sim, client_id=None, client_secret=None)
    configuration.access_token = sim.issue_token()
    with session(configuration) as api:
        with pytest.raises(ApiException) as refused:
            private_call(api)
    assert (
        "private/get_cancel_on_disconnect needs the permission account:read, which the token may "
        "lack (its scope is not known to the client)"
    ) in str(refused.value)


def test_forbidden_compares_the_permission_with_the_granted_scope() -> None:
    from openapi_client.api.endpoints import ENABLE_CANCEL_ON_DISCONNECT, GET_CANCEL_ON_DISCONNECT
    from openapi_client.credentials import _note_grant, explain_forbidden

    _note_grant("tok-granted-scope-1", None, "account:read session:bot trade:none")
    error = ApiException(400, data={"error": {"code": 13021, "message": "forbidden"}})
    lacking = explain_forbidden(error, ENABLE_CANCEL_ON_DISCONNECT, "Bearer tok-granted-scope-1")
    scope = "'account:read session:bot trade:none'"
    assert f"the token's scope {scope} lacks account:read_write" in str(lacking)
    having = explain_forbidden(error, GET_CANCEL_ON_DISCONNECT, "tok-granted-scope-1")
    assert "seems to include it" in str(having)
    other = ApiException(400, data={"error": {"code": 13009, "message": "unauthorized"}})
    assert explain_forbidden(other, GET_CANCEL_ON_DISCONNECT, None) is other


# -- Deribit's session limit: one session, and recovery from an eviction ------------------------


def test_a_thousand_calls_keep_one_deribit_session() -> None:
    """Deribit allows 16 sessions per key and evicts the oldest for a 17th: a client that made a
    session per grant would evict its own. Over 1,000 calls and 50 token lifetimes (the clock
    moves 0.05 s a call, tokens live 1 s) the client holds one session and renews within it."""
    with on_manual_clock(token_ttl=1.0) as (sim, api, clock):
        started = time.monotonic()
        for _ in range(1000):
            private_call(api)
            clock.advance(0.05)
            assert time.monotonic() - started < 20, "1,000 loopback calls took too long"
        assert [(s.client_id, s.name) for s in sim.sessions] == [(CLIENT_ID, "openapi-client")]
        assert sim.session_evictions == []
        kinds = grants(sim)
        assert kinds[0] == "client_signature" and len(kinds) > 50
        assert set(kinds[1:]) == {"refresh_token"}
        assert len(private_requests(sim)) == 1000, "no call was refused and repeated"


def test_an_evicted_session_recovers_with_one_new_grant() -> None:
    with DeribitSimulator(credentials={CLIENT_ID: SECRET}) as sim:
        with session(key_configuration(sim)) as api:
            private_call(api)
            # Another program on the same key opens 16 sessions: the 17th session of the key
            # evicts the one with the shortest remaining lifetime, the client's.
            others = Configuration(host=sim.url, retries=0)
            with ApiClient(others) as client:
                for number in range(16):
                    AuthenticationApi(client).public_auth_get(
                        "client_credentials",
                        client_id=CLIENT_ID,
                        client_secret=SECRET,
                        scope=f"session:other-{number}",
                    )
            (eviction,) = sim.session_evictions
            assert (eviction.name, eviction.replaced_by) == ("openapi-client", "other-15")
            sim.clear_requests()
            private_call(api)  # 13009: authenticate again once, and go on
            private_call(api)
        assert [r.error_code for r in private_requests(sim)] == [13009, None, None]
        assert grants(sim) == ["refresh_token", "client_signature"]  # the refresh token died too
        names = [s.name for s in sim.sessions]
        assert "openapi-client" in names and len(names) == 16


def test_a_narrower_scope_is_granted_and_13021_names_the_missing_permission(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from test_websocket_support import session as ws_session

    from openapi_client.simulator import ApiKey

    read_only = ApiKey(CLIENT_ID, client_secret=SECRET, max_scope="account:read wallet:read")
    with DeribitSimulator(keys=[read_only], time_scale=0.1) as sim:
        # Asks for more than the key allows: Deribit grants the key's maximum, the client warns.
        configuration = key_configuration(sim, scope="account:read_write")
        with caplog.at_level(logging.WARNING, logger="openapi_client"):
            with session(configuration) as api:
                private_call(api)  # account:read is enough for this one
                with pytest.raises(ApiException) as over_http:
                    api.private_enable_cancel_on_disconnect_get(scope="account")
            with ws_session(configuration) as ws_client:
                with pytest.raises(ApiException) as on_websocket:
                    SessionManagementApi(ws_client).private_enable_cancel_on_disconnect_get()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings and all(
            w.startswith("asked Deribit for 'account:read_write' but the token has 'account:read'")
            for w in warnings
        )
        for error in (over_http.value, on_websocket.value):
            assert error.error_code == 13021
            headline = str(error).splitlines()[0]
            assert "enable_cancel_on_disconnect needs the permission account:read_write" in headline
            assert re.search(r"the token's scope '[^']*account:read[^']*' lacks", headline)
        refused = [r for r in sim.requests if r.path.endswith("/enable_cancel_on_disconnect")]
        assert len(refused) == 2, "13021 is not retried"
