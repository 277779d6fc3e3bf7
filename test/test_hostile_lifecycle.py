"""Promises 5, 8 and 9, and the client's life: fork safety, a clean exit with calls in flight, a
closed client that stays closed, and a transport that rests on public APIs only.

Fork and exit are exercised in child processes (a forked pytest worker would inherit its
threads); the servers are raw sockets here, on loopback.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from test_hostile_server import (
    HostileServer,
    Peer,
    always,
    api_for,
    configuration_for,
    path_fixture,  # noqa: F401 - the `path` fixture
    response,
    serve_each,
)

import openapi_client
from openapi_client import ApiClient, ApiValueError, SessionManagementApi
from openapi_client.rest import RESTClientObject

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(openapi_client.__file__).resolve().parent


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    env.pop("PYTHONWARNINGS", None)
    return env


def echo(head: bytes) -> bytes:
    """Answers each request with its own interval, after a short pause (so calls overlap)."""
    time.sleep(0.02)
    interval = head.split(b"interval=")[1].split(b" ")[0].decode()
    return response(json.dumps({"jsonrpc": "2.0", "result": interval}).encode())


# -- promise 5: fork safety -------------------------------------------------------------------

FORK_CHILD = r"""
import os, sys
from openapi_client import ApiClient, Configuration, SessionManagementApi

url, path = sys.argv[1], sys.argv[2]
configuration = Configuration(host=url, fast_path=path == "direct", retries=0,
                              request_timeout=(5, 5), access_token="fork-token-123456")
api = SessionManagementApi(ApiClient(configuration))
assert api.public_set_heartbeat_get(10)["result"] == "10"  # a pooled connection, a watchdog
pending = api.public_set_heartbeat_get(11, async_req=True)  # the async thread started
assert pending.get(5)["result"] == "11"

def calls(first):
    wrong = []
    for interval in range(first, first + 20):
        result = api.public_set_heartbeat_get(interval)["result"]
        if result != str(interval):
            wrong.append((interval, result))
    pending = api.public_set_heartbeat_get(first + 99, async_req=True)
    if pending.get(5)["result"] != str(first + 99):
        wrong.append("async")
    return wrong

pid = os.fork()
if pid == 0:
    wrong = calls(1000)
    os._exit(3 if wrong else 0)
wrong = calls(2000)
_, status = os.waitpid(pid, 0)
print(f"parent={len(wrong)} child={os.waitstatus_to_exitcode(status)}", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_after_fork_parent_and_child_each_get_their_own_answers(path: str) -> None:
    with HostileServer(serve_each(echo)) as server:
        ran = subprocess.run(
            [sys.executable, "-c", FORK_CHILD, server.url, path],
            capture_output=True, text=True, env=child_env(), timeout=25, check=False,
        )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() == "parent=0 child=0", ran.stderr[-3000:]
    # The child opened its own connection instead of sharing the parent's.
    assert server.connections >= 2
    intervals = [target.split("interval=")[1] for target in server.targets()]
    assert len(intervals) == 2 + 2 * 21


# -- promise 8: a clean exit --------------------------------------------------------------------

EXIT_CHILD = r"""
import sys
from openapi_client import ApiClient, Configuration, SessionManagementApi

url, path = sys.argv[1], sys.argv[2]
configuration = Configuration(host=url, fast_path=path == "direct")  # default timeouts
api = SessionManagementApi(ApiClient(configuration, pool_threads=4))
pending = [api.public_set_heartbeat_get(30, async_req=True) for _ in range(6)]
sys.stdin.readline()  # the test saw the calls arrive: they are in flight, the server silent
print("last line", flush=True)
"""


@pytest.mark.timing
def test_script_with_calls_in_flight_exits_at_once(path: str) -> None:
    def script(peer: Peer) -> None:
        peer.read_request()
        peer.hold()

    with HostileServer(script) as server:
        child = subprocess.Popen(
            [sys.executable, "-c", EXIT_CHILD, server.url, path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(),
        )
        try:
            assert child.stdin is not None and child.stdout is not None
            waiting_since = time.monotonic()
            while not server.requests:
                assert child.poll() is None, child.communicate()[1]
                assert time.monotonic() - waiting_since < 20, "no call reached the server"
                time.sleep(0.01)
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "last line"
            said = time.monotonic()
            child.wait(20)
            exited = time.monotonic() - said
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 0, child.stderr.read() if child.stderr else ""
    # The calls in flight would hold a process that waited for them for the default read timeout.
    assert exited < 5.0


# -- a closed client stays closed -----------------------------------------------------------------


def test_closed_client_refuses_calls_and_opens_nothing(path: str) -> None:
    with HostileServer(always(response())) as server:
        api = api_for(server.url, path)
        assert api.public_set_heartbeat_get(30)["result"] == "ok"
        api.api_client.close()
        waiting_since = time.monotonic()
        while server.open_now and time.monotonic() - waiting_since < 5.0:
            time.sleep(0.01)
        assert server.open_now == 0, "close() closed the idle connection"
        with pytest.raises(ApiValueError, match="closed"):
            api.public_set_heartbeat_get(30)
        with pytest.raises(ApiValueError, match="closed"):
            api.public_set_heartbeat_get(30, async_req=True)
        with pytest.raises(ApiValueError, match="closed"):
            api.api_client.rest_client.request("GET", server.url + "/public/test")
    assert server.connections == 1


def test_close_waits_for_calls_in_flight_and_then_refuses(path: str) -> None:
    with HostileServer(serve_each(echo)) as server:
        client = ApiClient(configuration_for(server.url, path))
        api = SessionManagementApi(client)
        pending = [api.public_set_heartbeat_get(40 + i, async_req=True) for i in range(3)]
        client.close()
        assert [p.get(5)["result"] for p in pending] == ["40", "41", "42"]
        assert client.closed


def test_threads_share_a_client_until_it_closes(path: str) -> None:
    with HostileServer(serve_each(echo)) as server:
        api = api_for(server.url, path, max_connections=4)
        wrong: list[Any] = []

        def work(first: int) -> None:
            for interval in range(first, first + 10):
                result = api.public_set_heartbeat_get(interval)["result"]
                if result != str(interval):
                    wrong.append((interval, result))

        threads = [threading.Thread(target=work, args=(100 * i,)) for i in range(1, 7)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        api.api_client.close()
    assert wrong == []
    assert server.most_open <= 4


# -- promise 9: public APIs only ------------------------------------------------------------------


def test_connection_classes_replaced_fall_back_to_urllib3s_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As ``urllib3.http2.inject_into_urllib3()`` does: the direct path steps aside."""

    class OtherConnection(urllib3.connection.HTTPConnection):
        pass

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "ConnectionCls", OtherConnection)
    with HostileServer(serve_each(echo)) as server:
        client = ApiClient(configuration_for(server.url, "direct"))
        assert client.rest_client.direct is False
        api = SessionManagementApi(client)
        assert api.public_set_heartbeat_get(31)["result"] == "31"
        client.close()
    assert server.connections == 1


def test_fast_path_setting_and_proxy_choose_the_path(path: str) -> None:
    configuration = configuration_for("http://127.0.0.1:9/api/v2", path)
    assert RESTClientObject(configuration).direct is (path == "direct")
    configuration.proxy = "http://127.0.0.1:9"
    assert RESTClientObject(configuration).direct is False


#: urllib3 and http.client names the transport must not touch: private API, or base-class
#: methods called on urllib3's objects.
FORBIDDEN = ("_new_conn", "_collections", "_get_conn", "_put_conn", "_make_request",
             "_validate_conn", "_original_response", "_fp", "_pool", "_connection",
             "_prepare_conn", "_get_timeout")


def test_the_library_uses_no_private_urllib3_name() -> None:
    offences: list[str] = []
    for source in sorted(PACKAGE.rglob("*.py")):
        if "simulator" in source.parts:
            continue  # the simulator serves; it imports no urllib3
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("urllib3"):
                if any(part.startswith("_") for part in (node.module or "").split(".")) or any(
                    alias.name.startswith("_") for alias in node.names
                ):
                    offences.append(f"{source.name}:{node.lineno} from {node.module} import")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("urllib3") and "._" in alias.name:
                        offences.append(f"{source.name}:{node.lineno} import {alias.name}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in FORBIDDEN
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                offences.append(f"{source.name}:{node.lineno} .{node.attr}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "http"
                and node.value.attr == "client"
                and node.attr in ("HTTPConnection", "HTTPSConnection", "HTTPResponse")
            ):
                offences.append(f"{source.name}:{node.lineno} http.client.{node.attr}")
    assert offences == [], "\n".join(offences)
