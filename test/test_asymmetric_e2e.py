"""Asymmetric API keys end to end against the simulator, which registers the committed test-only
public keys and verifies signatures with its own code: grants over HTTP and on the WebSocket
session, renewal, the fallback to a fresh signed grant, re-authentication after 13009 and the
session's restore after a reconnect."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_asymmetric import (
    ED25519,
    ED25519_ENCRYPTED,
    ED25519_PUBLIC,
    PASSWORD,
    RSA_2048,
    RSA_2048_PUBLIC,
    pem_of,
    verify,
)
from test_websocket_support import SOON, Recorder, session, wait_until

from openapi_client import ApiClient, ApiException, Configuration, SessionManagementApi
from openapi_client.simulator import ApiKey, DeribitSimulator, RecordedRequest
from openapi_client.testing import ManualClock, simulator_configuration
from openapi_client.websocket import (
    Authenticated,
    SessionRestored,
    TokenRefreshed,
)

pytestmark = pytest.mark.timeout(30)

ED25519_ID = "ed25519-key"
RSA_ID = "rsa-key"
KEYS = (
    ApiKey(ED25519_ID, public_key=pem_of(ED25519_PUBLIC)),
    ApiKey(RSA_ID, public_key=pem_of(RSA_2048_PUBLIC)),
)
#: (client id, private key file, password, public key file)
KINDS = {
    "ed25519": (ED25519_ID, ED25519, None, ED25519_PUBLIC),
    "ed25519-encrypted": (ED25519_ID, ED25519_ENCRYPTED, PASSWORD, ED25519_PUBLIC),
    "rsa": (RSA_ID, RSA_2048, None, RSA_2048_PUBLIC),
}
#: Simulator time for the WebSocket tests: a test_request every second.
CALM_SCALE = 0.1


@contextlib.contextmanager
def simulator(**settings: Any) -> Iterator[DeribitSimulator]:
    with DeribitSimulator(keys=KEYS, time_scale=CALM_SCALE, **settings) as sim:
        yield sim


def key_configuration(
    sim: DeribitSimulator, kind: str = "ed25519", **settings: Any
) -> Configuration:
    client_id, key_file, password, _ = KINDS[kind]
    keyed: dict[str, Any] = {
        "client_id": client_id,
        "client_secret": None,
        "private_key_file": key_file,
        "private_key_password": password,
    }
    return simulator_configuration(sim, **{**keyed, **settings})


def private_call(api: SessionManagementApi) -> None:
    assert api.private_get_cancel_on_disconnect_get(scope="account")["result"]["enabled"] is False


def grants(sim: DeribitSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if r.path.endswith("/public/auth")]


def signed_grants(sim: DeribitSimulator, public_pem: Path) -> list[str]:
    """The nonces of the signed grants, each checked against the public key (not by the
    client's code)."""
    nonces = []
    for grant in grants(sim):
        if grant.query["grant_type"] != "client_signature":
            continue
        message = f"{grant.query['timestamp']}\n{grant.query['nonce']}\n".encode()
        verify(public_pem, grant.query["signature"], message)
        nonces.append(grant.query["nonce"])
    return nonces


# -- HTTP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_private_calls_with_a_token_from_a_signed_grant(kind: str) -> None:
    with simulator() as sim, ApiClient(key_configuration(sim, kind)) as client:
        api = SessionManagementApi(client)
        private_call(api)
        private_call(api)
        assert [g.query["grant_type"] for g in grants(sim)] == ["client_signature"]
        assert len(signed_grants(sim, KINDS[kind][3])) == 1
        (live,) = sim.sessions
        assert (live.client_id, live.name) == (KINDS[kind][0], "openapi-client")


@pytest.mark.usefixtures("short_token_lifetimes")
def test_renewal_and_a_fresh_signed_grant_when_the_refresh_is_refused() -> None:
    clock = ManualClock()
    with simulator(token_ttl=1.0, clock=clock) as sim, ApiClient(key_configuration(sim)) as client:
        client.credentials.clock = clock
        api = SessionManagementApi(client)
        private_call(api)
        clock.advance(0.9)  # inside the refresh margin: renewed with the refresh token
        private_call(api)
        sim.revoke_tokens(refresh_tokens=True)
        clock.advance(0.9)  # the refresh is refused: the key signs a new grant
        private_call(api)
        kinds = [g.query["grant_type"] for g in grants(sim)]
        assert kinds == ["client_signature", "refresh_token", "refresh_token", "client_signature"]
        assert len(set(signed_grants(sim, ED25519_PUBLIC))) == 2


def test_13009_reauthenticates_once_with_a_fresh_signature() -> None:
    with simulator() as sim, ApiClient(key_configuration(sim, "rsa")) as client:
        api = SessionManagementApi(client)
        private_call(api)
        sim.revoke_tokens(refresh_tokens=True)
        private_call(api)  # 13009, then a refresh (refused) and a new signed grant, then again
        refused = [r for r in sim.requests if r.error_code == 13009]
        assert len(refused) == 2  # the private call, and the refresh token
        assert len(set(signed_grants(sim, RSA_2048_PUBLIC))) == 2
        calls = [r for r in sim.requests if r.path.endswith("/private/get_cancel_on_disconnect")]
        assert len(calls) == 3


def test_a_wrong_key_is_refused_once_with_13004() -> None:
    # The RSA private key under the Ed25519 key's client id: a valid signature, the wrong key.
    configuration_for = {"client_id": ED25519_ID}
    with simulator() as sim, ApiClient(key_configuration(sim, "rsa", **configuration_for)) as c:
        with pytest.raises(ApiException) as refused:
            private_call(SessionManagementApi(c))
        assert refused.value.error_code == 13004
        assert "private key (a private key must match the public key" in str(refused.value)
        assert len(grants(sim)) == 1


# -- the WebSocket session --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_websocket_session_with_a_private_key(kind: str) -> None:
    recorder = Recorder()
    with simulator() as sim, session(key_configuration(sim, kind), recorder) as ws_client:
        api = SessionManagementApi(ws_client)
        private_call(api)
        (authenticated,) = recorder.wait_for(Authenticated)  # events reach callbacks later
        assert "session:openapi-client" in authenticated.scope.split()
        (grant,) = grants(sim)
        assert grant.transport == "websocket"
        assert len(signed_grants(sim, KINDS[kind][3])) == 1


def test_websocket_reauthentication_and_restore_sign_fresh_grants() -> None:
    recorder = Recorder()
    with simulator() as sim, session(key_configuration(sim), recorder) as ws_client:
        api = SessionManagementApi(ws_client)
        private_call(api)
        # 13009 on the open connection: one re-authentication, the call goes through.
        sim.revoke_tokens(refresh_tokens=True)
        private_call(api)
        assert len(set(signed_grants(sim, ED25519_PUBLIC))) == 2
        # A lost connection: the new one is authenticated with a fresh signed grant too.
        sim.revoke_tokens(refresh_tokens=True)
        sim.inject("ws_drop", path="/private/get_cancel_on_disconnect")
        private_call(api)  # lost with the connection, and sent again on the next
        restored = recorder.wait_for(SessionRestored, 2)
        assert restored[-1].connection == 2
        assert len(set(signed_grants(sim, ED25519_PUBLIC))) == 3


@pytest.mark.timing
@pytest.mark.usefixtures("short_token_lifetimes")
def test_websocket_renewal_falls_back_to_a_signed_grant() -> None:
    """Tokens live 1 s and are renewed from 0.8 s on, on the open connection; with the refresh
    token revoked the renewal is a new grant signed by the key, and no connection is lost."""
    recorder = Recorder()
    with simulator(token_ttl=1.0, clock=ManualClock()) as sim:
        configuration = key_configuration(sim, token_refresh_margin=0.5)
        with session(configuration, recorder, heartbeat=None) as ws_client:
            sim.revoke_tokens(refresh_tokens=True)
            refreshed = wait_until(lambda: recorder.of(TokenRefreshed), "a renewal", SOON)
            assert refreshed[0].connection == 1
            private_call(SessionManagementApi(ws_client))
        kinds = [g.query["grant_type"] for g in grants(sim)]
        assert kinds[:3] == ["client_signature", "refresh_token", "client_signature"]
        assert len(set(signed_grants(sim, ED25519_PUBLIC))) >= 2
        assert [e.connection for e in recorder.of(SessionRestored)] == [1]
