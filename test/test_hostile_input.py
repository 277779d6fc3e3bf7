"""Promise 6 and the review's items on settings: careless input is a setting error, said when the
setting is made, never a network fault and never retried.

Files, the host URL and every header value are checked when the setting is made (or the client is
built), raise ``ApiValueError`` naming the setting and never quote a credential; unknown setting
names are refused; numbers reach the query in a canonical form; headers are case-insensitive; an
explicit keyword wins over the environment; many threads wait for one of ``max_connections``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import trustme
from test_hostile_server import (
    TOKEN,
    HostileServer,
    always,
    api_for,
    configuration_for,
    path_fixture,  # noqa: F401 - the `path` fixture
    response,
    serve_each,
)

from openapi_client import (
    ApiClient,
    ApiTypeError,
    ApiValueError,
    Configuration,
    SessionManagementApi,
)
from openapi_client.configuration import PRODUCTION_HOST, TESTNET_HOST
from openapi_client.exceptions import ApiUnknownSettingError

pytestmark = pytest.mark.timeout(30)

HEAD_INJECTION = "value\r\nX-Injected: 1"


def heads_of(server: HostileServer) -> list[dict[str, list[str]]]:
    """The headers of every request, by lower-case name."""
    result = []
    for head in server.requests:
        fields: dict[str, list[str]] = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            fields.setdefault(name.strip().lower(), []).append(value.strip())
        result.append(fields)
    return result


# -- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["ssl_ca_cert", "cert_file", "key_file"])
def test_missing_file_is_refused_when_set(setting: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(ApiValueError, match=rf"Configuration\.{setting}: no such file"):
        Configuration(**{setting: missing})
    configuration = Configuration()
    with pytest.raises(ApiValueError, match=setting):
        setattr(configuration, setting, missing)
    assert getattr(configuration, setting) is None
    with pytest.raises(ApiTypeError, match=setting):
        setattr(configuration, setting, 42)


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    unreadable = tmp_path / "ca.pem"
    unreadable.write_text("x")
    unreadable.chmod(0)
    try:
        if unreadable.open("rb"):  # root reads anything: nothing to test
            pytest.skip("running as a user who can read any file")
    except PermissionError:
        pass
    with pytest.raises(ApiValueError, match="cannot be read"):
        Configuration(ssl_ca_cert=str(unreadable))


@pytest.mark.parametrize("content", ["not a certificate", "-----BEGIN CERTIFICATE-----\nxx\n"])
def test_bad_ca_bundle_is_refused_when_the_client_is_built(
    content: str, path: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text(content)
    with HostileServer(always(response())) as server:
        configuration = configuration_for(server.url, path, ssl_ca_cert=str(bundle))
        with pytest.raises(ApiValueError, match=r"ssl_ca_cert.*not a usable CA bundle"):
            ApiClient(configuration)
    assert server.connections == 0


def test_client_certificate_problems_are_setting_errors(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("client.example")
    cert, key, garbage = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "garbage.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    garbage.write_text("garbage")
    with pytest.raises(ApiValueError, match="key_file is set without cert_file"):
        ApiClient(Configuration(key_file=str(key)))
    with pytest.raises(ApiValueError, match="cert_file/key_file: not a usable"):
        ApiClient(Configuration(cert_file=str(garbage), key_file=str(key)))
    with pytest.raises(ApiValueError, match="cert_file/key_file: not a usable"):
        ApiClient(Configuration(cert_file=str(cert)))  # no key in the file
    ApiClient(Configuration(cert_file=str(cert), key_file=str(key))).close()


# -- the host URL ---------------------------------------------------------------------------------

BAD_HOSTS = {
    "space": "https://www.deribit .com/api/v2",
    "nul": "https://www.deribit.com\x00/api/v2",
    "tab": "https://www.deribit.com/api\t/v2",
    "del": "https://www.deribit.com/api/v2\x7f",
    "user-info": "https://user:s3cr3t-pw@www.deribit.com/api/v2",
    "port-zero": "https://www.deribit.com:0/api/v2",
    "port-too-big": "https://www.deribit.com:65536/api/v2",
    "port-letters": "https://www.deribit.com:https/api/v2",
    "empty-port": "https://www.deribit.com:/api/v2",
    "no-scheme": "www.deribit.com/api/v2",
    "ftp": "ftp://www.deribit.com/api/v2",
    "query": "https://www.deribit.com/api/v2?x=1",
    "fragment": "https://www.deribit.com/api/v2#top",
    "bad-name": "https://www_deribit!.com/api/v2",
    "no-host": "https:///api/v2",
}


@pytest.mark.parametrize("host", BAD_HOSTS.values(), ids=BAD_HOSTS.keys())
def test_bad_host_is_refused_when_set(host: str) -> None:
    with pytest.raises(ApiValueError, match=r"Configuration\.host"):
        Configuration(host=host)
    configuration = Configuration()
    with pytest.raises(ApiValueError, match=r"Configuration\.host") as refused:
        configuration.host = host
    assert configuration.host == PRODUCTION_HOST
    assert "s3cr3t-pw" not in str(refused.value)


def test_host_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(ApiTypeError, match=r"Configuration\.host must be a string"):
        Configuration(host=b"https://www.deribit.com")  # type: ignore[arg-type]


@pytest.mark.parametrize("proxy", ["ftp://127.0.0.1:8080", "http://127.0.0.1:0", "http:// x",
                                   "http://user:secret-pw@127.0.0.1:99999"])
def test_bad_proxy_is_refused_when_set_without_quoting_it(proxy: str) -> None:
    with pytest.raises(ApiValueError, match=r"Configuration\.proxy") as refused:
        Configuration(proxy=proxy)
    assert "secret-pw" not in str(refused.value)


# -- header values --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [HEAD_INJECTION, "a\nb", "nul\x00", "bell\x07", "snow\u2603"])
def test_header_values_are_checked_when_set(bad: str) -> None:
    configuration = Configuration()
    with pytest.raises(ApiValueError, match=r"Configuration\.user_agent") as refused:
        configuration.user_agent = bad
    assert "Injected" not in str(refused.value)
    with pytest.raises(ApiValueError, match=r"Configuration\.proxy_headers"):
        configuration.proxy_headers = {"Proxy-Authorization": bad}
    client = ApiClient(configuration)
    with pytest.raises(ApiValueError, match="set_default_header"):
        client.set_default_header("X-Bot", bad)
    with pytest.raises(ApiValueError, match=r"ApiClient\.cookie"):
        client.cookie = bad
    with pytest.raises(ApiValueError, match=r"ApiClient\.cookie"):
        ApiClient(configuration, cookie=bad)
    with pytest.raises(ApiValueError):
        ApiClient(configuration, header_name="X-Bot", header_value=bad)
    client.close()


@pytest.mark.parametrize("name", ["", "Bad Name", "Colon:", "X-\u00e9", "Cr\r\n"])
def test_header_names_are_checked_when_set(name: str) -> None:
    with ApiClient(Configuration()) as client, pytest.raises(ApiValueError):
        client.set_default_header(name, "value")


@pytest.mark.parametrize("bad", [HEAD_INJECTION, "two words", "tab\tx", "nul\x00"])
@pytest.mark.parametrize("setting", ["access_token", "client_id", "client_secret"])
def test_credentials_are_checked_when_set_and_never_quoted(setting: str, bad: str) -> None:
    if setting == "client_secret" and bad in ("two words",):
        Configuration(client_secret=bad)  # a secret may contain a space; it never goes in a header
        return
    with pytest.raises(ApiValueError, match=rf"Configuration\.{setting}") as refused:
        Configuration(**{setting: bad})
    assert bad not in str(refused.value) and "Injected" not in str(refused.value)


def test_setting_errors_are_never_sent_nor_retried(path: str) -> None:
    with HostileServer(always(response())) as server:
        api = api_for(server.url, path, retries=5)
        api.api_client.default_headers["X-Bot"] = HEAD_INJECTION  # past set_default_header
        with pytest.raises(ApiValueError, match="default_headers"):
            api.public_set_heartbeat_get(30)
        api.api_client.close()
    assert server.connections == 0


# -- unknown settings -----------------------------------------------------------------------------


def test_unknown_setting_names_are_refused_with_a_hint() -> None:
    configuration = Configuration()
    with pytest.raises(ApiUnknownSettingError, match="did you mean 'verify_ssl'"):
        configuration.verify_sll = False  # type: ignore[attr-defined]
    assert isinstance(ApiUnknownSettingError("x"), AttributeError)
    with pytest.raises(TypeError):
        Configuration(verify_sll=False)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("attempt_timeout", 0), ("attempt_timeout", float("nan")), ("attempt_timeout", "5"),
        ("call_timeout", -1), ("call_timeout", float("inf")), ("max_response_size", 0),
        ("max_response_size", 1.5), ("max_connections", 0), ("connection_pool_maxsize", True),
        ("request_timeout", (1, 2, 3)), ("request_timeout", 10**400), ("rate_limit", "20/s"),
        ("token_provider", "token"), ("session_name", "two words"), ("auth_method", "password"),
        ("assert_hostname", "bad name!"), ("token_refresh_margin", float("nan")),
    ],
)
def test_numbers_and_choices_are_checked_when_set(setting: str, value: Any) -> None:
    configuration = Configuration()
    before = getattr(configuration, setting)
    with pytest.raises((ApiValueError, ApiTypeError), match=setting):
        setattr(configuration, setting, value)
    assert getattr(configuration, setting) == before


# -- numbers in the query -------------------------------------------------------------------------


class SneakyInt(int):
    def __str__(self) -> str:
        return "30&access_token=stolen"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)


class SneakyFloat(float):
    def __str__(self) -> str:
        return "12.5&x=1"

    __repr__ = __str__


@pytest.mark.parametrize(
    ("value", "sent"), [(SneakyInt(30), "30"), (SneakyFloat(12.5), "12.5"), (30.0, "30"),
                        (1e21, "1000000000000000000000")],
)
def test_numbers_are_sent_in_a_canonical_form(value: Any, sent: str, path: str) -> None:
    with HostileServer(always(response())) as server:
        api = api_for(server.url, path)
        api.public_set_heartbeat_get(value)
        api.api_client.close()
    assert server.targets() == [f"/api/v2/public/set_heartbeat?interval={sent}"]


# -- headers are case-insensitive -----------------------------------------------------------------


def test_default_headers_cannot_duplicate_authorization_or_user_agent(path: str) -> None:
    with HostileServer(always(response())) as server:
        api = api_for(server.url, path)
        client = api.api_client
        client.set_default_header("authorization", "Bearer someone-elses-token")
        client.set_default_header("user-agent", "first-agent")
        client.set_default_header("USER-AGENT", "my-bot/1.0")
        client.set_default_header("x-bot", "a")
        client.set_default_header("X-Bot", "b")
        api.private_get_cancel_on_disconnect_get("account")
        api.public_set_heartbeat_get(30)
        client.close()
    private, public = heads_of(server)
    assert private["authorization"] == [f"Bearer {TOKEN}"]
    assert public["authorization"] == [f"Bearer {TOKEN}"]
    for head in (private, public):
        assert head["user-agent"] == ["my-bot/1.0"]
        assert head["x-bot"] == ["b"]
        assert head["host"] and len(head["host"]) == 1


# -- where to connect: an explicit keyword wins ---------------------------------------------------


def test_from_env_testnet_keyword_wins_over_deribit_host() -> None:
    environ = {"DERIBIT_HOST": PRODUCTION_HOST}
    assert Configuration.from_env(environ, testnet=True).host == TESTNET_HOST
    assert Configuration.from_env(environ, testnet=False).host == PRODUCTION_HOST
    environ = {"DERIBIT_HOST": "http://127.0.0.1:9/api/v2", "DERIBIT_TESTNET": "1"}
    with pytest.raises(ApiValueError, match="testnet=True and host="):
        Configuration.from_env(environ)
    assert Configuration.from_env(environ, host=PRODUCTION_HOST).host == PRODUCTION_HOST
    with pytest.raises(ApiValueError, match="disagree"):
        Configuration(testnet=True, host=PRODUCTION_HOST)
    assert Configuration(testnet=True, host=TESTNET_HOST + "/").testnet


# -- many threads, few connections ----------------------------------------------------------------


def test_many_threads_wait_for_one_of_max_connections(path: str) -> None:
    def slow(head: bytes) -> bytes:
        threading.Event().wait(0.05)
        return response()

    with HostileServer(serve_each(slow)) as server:
        api = api_for(server.url, path, max_connections=3)
        errors: list[BaseException] = []

        def call() -> None:
            try:
                api.public_set_heartbeat_get(30)
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=call) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        api.api_client.close()
    assert errors == []
    assert server.most_open <= 3
    assert len(server.requests) == 24


def test_default_connection_cap_is_deribits() -> None:
    assert Configuration().max_connections == 32


def test_api_for_every_client_shares_no_state(path: str) -> None:
    with HostileServer(always(response())) as server:
        first = api_for(server.url, path)
        second = SessionManagementApi(ApiClient(configuration_for(server.url, path)))
        first.api_client.close()
        assert second.public_set_heartbeat_get(30)["result"] == "ok"
        second.api_client.close()
