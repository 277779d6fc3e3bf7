"""An encrypted client key never makes the client wait for a passphrase on a terminal.

OpenSSL asks for the passphrase of an encrypted key on the process's controlling terminal, and
waits for an answer, unless the program gives it a callback. A bot started from a shell, then left
running, would hang there at its first connection. Every TLS context the library builds (for the
direct HTTP path, urllib3's path and the WebSocket session alike) comes from one function that
gives a callback answering nothing, so the key is refused at once with ``ApiValueError``.

Each case runs in a child process whose controlling terminal is a pseudo-terminal held by the test:
a prompt would appear on it, and the child would wait.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from test_hostile_lifecycle import child_env

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal"),
    pytest.mark.timeout(60),
]

CHILD = r"""
import fcntl, os, sys, termios

# A new session (start_new_session): the first terminal it opens becomes its controlling one.
terminal = os.open(sys.argv[1], os.O_RDWR)
fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)
os.close(os.open("/dev/tty", os.O_RDWR))  # where OpenSSL would prompt
print("terminal ready", flush=True)

from openapi_client import ApiClient, ApiValueError, Configuration
from openapi_client.websocket import WebSocketApiClient

client, cert_file, key_file, port = sys.argv[2:6]
settings = {"cert_file": cert_file, "key_file": key_file or None, "retries": 0}
if client == "urllib3 (proxy)":
    settings["proxy"] = f"http://127.0.0.1:{port}"
configuration = Configuration(host=f"https://127.0.0.1:{port}/api/v2", **settings)
try:
    if client == "websocket":
        WebSocketApiClient(configuration, heartbeat=None)
    else:
        ApiClient(configuration)
except ApiValueError as error:
    print("refused:", error, flush=True)
"""

CLIENTS = ["direct", "urllib3 (proxy)", "websocket"]


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """A client certificate whose key is encrypted: the key in a file of its own, or after the
    certificate in one file (``key_file`` unset)."""
    issued = trustme.CA().issue_cert("client.example")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"only the operator knows"),
    )
    folder = tmp_path_factory.mktemp("encrypted-key")
    cert, key_file, both = folder / "cert.pem", folder / "key.pem", folder / "both.pem"
    cert_pem = issued.cert_chain_pems[0].bytes()
    cert.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    both.write_bytes(cert_pem + key_pem)
    return {"key file": (str(cert), str(key_file)), "key in the certificate file": (str(both), "")}


def run_on_a_terminal(*args: str) -> tuple[str, float]:
    """Run the child with a pseudo-terminal as its controlling terminal; what appeared on the
    terminal, and how long the child took. Fails as soon as a passphrase prompt appears."""
    controller, terminal = os.openpty()
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, os.ttyname(terminal), *args],
        stdin=terminal, stdout=terminal, stderr=terminal,
        start_new_session=True, env=child_env(),
    )
    os.close(terminal)
    shown = b""
    try:
        while time.monotonic() - started < 30:
            readable, _, _ = select.select([controller], [], [], 0.1)
            if readable:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # every holder of the terminal has closed it
                    chunk = b""
                shown += chunk
                assert b"pass phrase" not in shown.lower(), f"prompted on the terminal: {shown!r}"
                if not chunk and child.poll() is not None:
                    break
            elif child.poll() is not None:
                break
        else:
            pytest.fail(f"the child still runs after 30 s (waiting for input?): {shown!r}")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        os.close(controller)
    return shown.decode("utf-8", "replace"), time.monotonic() - started


@pytest.mark.parametrize("layout", ["key file", "key in the certificate file"])
@pytest.mark.parametrize("client", CLIENTS)
def test_an_encrypted_client_key_is_refused_not_prompted_for(
    encrypted: dict[str, tuple[str, str]], client: str, layout: str
) -> None:
    cert_file, key_file = encrypted[layout]
    shown, elapsed = run_on_a_terminal(client, cert_file, key_file, str(refused_port()))
    assert "terminal ready" in shown, shown
    assert "refused: Configuration.cert_file/key_file: not a usable client certificate" in shown
    assert "key unencrypted" in shown, shown
    assert elapsed < 20, elapsed  # at once: a child starts in well under a second
