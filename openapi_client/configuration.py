"""Settings for a client: where to connect, how to authenticate, and how patient to be."""

from __future__ import annotations

import copy
import difflib
import logging
import math
import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Union, cast
from urllib.parse import SplitResult, urlsplit

from openapi_client._version import __version__
from openapi_client.exceptions import ApiTypeError, ApiUnknownSettingError, ApiValueError
from openapi_client.headers import check_header
from openapi_client.redaction import register_secret

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    from urllib3.util.retry import Retry

    from openapi_client.asymmetric import PrivateKey
    from openapi_client.rate_limit import RateLimit
    from openapi_client.retry import RetryPolicy

__all__ = ["PRODUCTION_HOST", "TESTNET_HOST", "Configuration", "Timeout"]

PRODUCTION_HOST = "https://www.deribit.com/api/v2"
TESTNET_HOST = "https://test.deribit.com/api/v2"

#: A timeout in seconds: one number for both connecting and reading, or ``(connect, read)``.
Timeout = Union[float, tuple[float, float]]

#: Connect and read timeouts used when a call passes no ``_request_timeout``.
DEFAULT_REQUEST_TIMEOUT: tuple[float, float] = (5.0, 10.0)
#: Seconds one attempt may take as a whole: connecting, sending and reading the whole answer.
DEFAULT_ATTEMPT_TIMEOUT = 15.0
#: Seconds one call may take as a whole: every attempt, backoff and rate-limit wait.
DEFAULT_CALL_TIMEOUT = 60.0
#: Bytes of response body accepted; Deribit's largest answers are about 5 MB.
DEFAULT_MAX_RESPONSE_SIZE = 8 * 1024 * 1024
#: Simultaneous connections to one host (Deribit allows 32 per IP address).
DEFAULT_MAX_CONNECTIONS = 32

AUTH_METHODS = ("client_signature", "client_credentials", "signature")

#: The Deribit session that key-based tokens are asked for (``scope=session:NAME``).
DEFAULT_SESSION_NAME = "openapi-client"
_SESSION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: The permission areas of Deribit's access scopes, and the levels each may be granted.
SCOPE_AREAS = ("account", "trade", "wallet", "block_trade", "block_rfq", "custody")
SCOPE_LEVELS = ("read", "read_write", "none")

_TRUE_WORDS = {"1", "true", "yes", "on"}

#: Why a private key goes only with ``auth_method="client_signature"``.
_ONLY_CLIENT_SIGNATURE = (
    "an asymmetric API key (a private key) authenticates only with "
    "auth_method='client_signature': Deribit accepts no other grant for such keys, and the "
    "per-request signature scheme is HMAC only"
)

logger = logging.getLogger(__name__)


# A host name: letters, digits, '-', '.', '_' (IDNA names arrive here already encoded).
_HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")


def check_host(url: Any, setting: str = "Configuration.host") -> SplitResult:
    """The parts of an API root URL, or ``ApiValueError`` saying what is wrong with it."""
    if not isinstance(url, str):
        raise ApiTypeError(f"{setting} must be a string, got {type(url).__name__}")
    example = "such as https://www.deribit.com/api/v2"
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise ApiValueError(
            f"{setting} must be a URL {example} without spaces or control characters, "
            f"got {url!r}"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiValueError(f"{setting} must be an http:// or https:// URL {example}, got {url!r}")
    if "@" in parts.netloc:
        raise ApiValueError(f"{setting} must not carry a user name or password")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ApiValueError(f"{setting} must not have a query or fragment, got {url!r}")
    hostname = parts.hostname or ""
    bracketed = parts.netloc.startswith("[")
    if not hostname or not (_IPV6 if bracketed else _HOST_NAME).fullmatch(hostname):
        raise ApiValueError(f"{setting} has an invalid host name: {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or (parts.netloc.endswith(":") and not bracketed):
        raise ApiValueError(f"{setting} has an invalid port (1 to 65535): {url!r}")
    return parts


def _check_file(value: Any, setting: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ApiTypeError(f"{setting} must be a file path or None, got {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str) or not os.path.isfile(path):
        raise ApiValueError(f"{setting}: no such file: {path!r}")
    if not os.access(path, os.R_OK):
        raise ApiValueError(f"{setting}: the file cannot be read: {path!r}")
    return path


def _optional_text(value: Any, setting: str) -> str | None:
    """``value`` when it is a string or None; ``ApiTypeError`` naming ``setting`` otherwise."""
    if value is not None and not isinstance(value, str):
        raise ApiTypeError(f"{setting} must be a string or None, got {type(value).__name__}")
    return value


def _check_credential(value: Any, setting: str, secret: bool = True) -> str | None:
    """A credential-like string (token, client id or secret): no whitespace, no control
    characters, never quoted in the message. A secret is registered for redaction."""
    text = _optional_text(value, setting)
    if text is None:
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise ApiValueError(f"{setting} contains whitespace or control characters")
    if secret:
        register_secret(text)
    return text


def _check_number(
    value: Any, setting: str, *, whole: bool = False, minimum: float = 0.0, unit: str = "seconds"
) -> Any:
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise ApiTypeError(f"{setting} must be {kind} of {unit}, got {value!r}")
    try:
        acceptable = math.isfinite(value) and value > minimum
    except OverflowError:
        acceptable = False
    if not acceptable:
        raise ApiValueError(f"{setting} must be finite and greater than {minimum:g} {unit}, "
                            f"got {value!r}")
    return value


def check_timeout(value: Any, name: str = "_request_timeout") -> Timeout:
    """Return ``value`` as a validated timeout; raise ``ApiTypeError``/``ApiValueError`` if not."""
    parts = value if isinstance(value, tuple) else (value,)
    if len(parts) not in (1, 2):
        raise ApiValueError(
            f"{name} must be a number of seconds or a (connect, read) pair, got {value!r}"
        )
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (int, float)):
            raise ApiTypeError(
                f"{name} must be a number of seconds or a (connect, read) pair of numbers, "
                f"got {value!r}"
            )
        try:
            acceptable = math.isfinite(part) and part > 0
        except OverflowError:
            acceptable = False
        if not acceptable:
            raise ApiValueError(
                f"{name} must be finite and greater than 0 seconds, got {value!r}"
            )
    return value  # type: ignore[no-any-return]


class Configuration:
    """Everything an :class:`~openapi_client.ApiClient` needs to know.

    Every setting is a constructor keyword and an attribute of the same name. Each is checked
    when it is set (``ApiTypeError``/``ApiValueError`` naming the setting), and a name that is
    not a setting (a typo such as ``verify_sll``) raises :class:`ApiUnknownSettingError`.

    Connection:
        ``host`` (the API root, default production ``https://www.deribit.com/api/v2``;
        ``testnet=True`` selects ``https://test.deribit.com/api/v2``), ``verify_ssl`` (on),
        ``ssl_ca_cert`` (a CA bundle path; default certifi's), ``cert_file``/``key_file`` (a client
        certificate), ``proxy``, ``proxy_headers``, ``connection_pool_maxsize`` (idle connections
        kept per host), ``max_connections`` (simultaneous connections per host, default 32:
        Deribit's limit per IP address; more threads wait for one), ``user_agent``,
        ``allow_insecure_http`` (send credentials over plain http to a host that is not
        loopback; off), ``fast_path`` (on: direct requests use the client's own keep-alive
        connections; off: every request goes through urllib3's ``PoolManager.urlopen``).

    Credentials:
        ``access_token`` (a bearer token; takes precedence), ``token_provider`` (a callable
        returning a token), ``client_id``/``client_secret`` with ``auth_method``
        (``"client_signature"``, the default, ``"client_credentials"`` or ``"signature"``), or
        ``client_id`` with an asymmetric key's ``private_key`` (PEM text or bytes) or
        ``private_key_file`` (a PEM file's path), and ``private_key_password`` when the key is
        encrypted (Ed25519 or RSA of 2048 bits or more; ``client_signature`` only; needs the
        ``[asymmetric]`` extra), and
        ``token_refresh_margin`` (seconds before expiry to refresh, default 60) and
        ``session_name`` (the Deribit session key-based tokens belong to, default
        ``"openapi-client"``, so they work on every connection; ``None`` asks for
        connection-scoped tokens, which Deribit ties to the connection that obtained them),
        ``scope`` (narrower permissions asked for with every key-based grant, e.g.
        ``"account:read"``; default None: the API key's own).

    Behaviour:
        ``request_timeout`` (seconds, a number or ``(connect, read)``; default ``(5, 10)``),
        ``attempt_timeout`` (seconds one attempt may take in all, default 15),
        ``call_timeout`` (seconds one call may take in all, retries included, default 60),
        ``max_response_size`` (bytes of body accepted, default 8 MiB),
        ``retries`` (an int, a urllib3 ``Retry`` or a :class:`~openapi_client.RetryPolicy`;
        default 3 retries), ``rate_limit`` (a :class:`~openapi_client.RateLimit`, default
        ``None``), ``client_side_validation`` (on), ``debug`` (off).
    """

    _default: Configuration | None = None

    def __init__(
        self,
        host: str | None = None,
        access_token: str | None = None,
        *,
        testnet: bool = False,
        client_id: str | None = None,
        client_secret: str | None = None,
        private_key: str | bytes | PrivateKey | None = None,
        private_key_file: str | os.PathLike[str] | None = None,
        private_key_password: str | bytes | None = None,
        auth_method: str | None = None,
        token_provider: Callable[[], str] | None = None,
        token_refresh_margin: float = 60.0,
        session_name: str | None = DEFAULT_SESSION_NAME,
        scope: str | None = None,
        verify_ssl: bool = True,
        ssl_ca_cert: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        assert_hostname: str | bool | None = None,
        proxy: str | None = None,
        proxy_headers: Mapping[str, str] | None = None,
        connection_pool_maxsize: int = 16,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        client_side_validation: bool = True,
        debug: bool = False,
        logger: Mapping[str, logging.Logger] | None = None,
        user_agent: str | None = None,
        request_timeout: Timeout = DEFAULT_REQUEST_TIMEOUT,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        retries: int | Retry | RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        allow_insecure_http: bool = False,
        fast_path: bool = True,
    ) -> None:
        if testnet and host is not None and host.rstrip("/") != TESTNET_HOST:
            raise ApiValueError(
                f"testnet=True and host={host!r} disagree: pass one of them (testnet=True means "
                f"{TESTNET_HOST})"
            )
        self.host: str = host or (TESTNET_HOST if testnet else PRODUCTION_HOST)
        self.access_token = access_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_method = auth_method
        self._private_key: PrivateKey | None = None
        self._private_key_file: str | None = None
        if private_key is not None and private_key_file is not None:
            raise ApiValueError("give private_key or private_key_file, not both")
        if private_key_password and private_key is None and private_key_file is None:
            raise ApiValueError(
                "private_key_password is set, but there is no private_key or private_key_file "
                "for it to decrypt"
            )
        # The password first: loading an encrypted key needs it.
        self.private_key_password = private_key_password
        if private_key_file is not None:
            self.private_key_file = private_key_file
        else:
            self.private_key = private_key
        self.token_provider = token_provider
        self.token_refresh_margin = token_refresh_margin
        self.session_name = session_name
        self.scope = scope
        self.verify_ssl = verify_ssl
        self.ssl_ca_cert = ssl_ca_cert
        self.cert_file = cert_file
        self.key_file = key_file
        self.assert_hostname = assert_hostname
        self.proxy = proxy
        self.proxy_headers = proxy_headers
        self.connection_pool_maxsize = connection_pool_maxsize
        self.max_connections = max_connections
        self.client_side_validation = client_side_validation
        self.user_agent: str = user_agent or (
            f"openapi_client/{__version__} (Deribit; python "
            f"{sys.version_info[0]}.{sys.version_info[1]})"
        )
        self.request_timeout = request_timeout
        self.attempt_timeout = attempt_timeout
        self.call_timeout = call_timeout
        self.max_response_size = max_response_size
        self.retries = retries
        self.rate_limit = rate_limit
        self.allow_insecure_http = allow_insecure_http
        self.fast_path = fast_path
        #: The loggers ``debug`` switches: this package's and urllib3's (keys ``package_logger``
        #: and ``urllib3_logger``; the ``logger`` keyword replaces either).
        self.logger: dict[str, logging.Logger] = {
            "package_logger": logging.getLogger("openapi_client"),
            "urllib3_logger": logging.getLogger("urllib3"),
        }
        if logger is not None:
            self.logger.update(logger)
        self._debug = False
        if debug:
            self.debug = True

    # -- every setting checked when it is set -------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _SETTINGS and not hasattr(type(self), name):
            known = sorted(setting for setting in _SETTINGS if not setting.startswith("_"))
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ApiUnknownSettingError(
                f"Configuration has no setting {name!r}{hint} (see help(Configuration))"
            )
        check = _CHECKS.get(name)
        if check is not None:
            value = check(value)
        object.__setattr__(self, name, value)

    @property
    def testnet(self) -> bool:
        """Whether ``host`` is Deribit's testnet; setting it switches between the two hosts."""
        return self.host.rstrip("/") == TESTNET_HOST

    @testnet.setter
    def testnet(self, value: bool) -> None:
        self.host = TESTNET_HOST if value else PRODUCTION_HOST

    @property
    def auth_method(self) -> str:
        """How ``client_id``/``client_secret`` are used (see the class docstring)."""
        return self._auth_method

    @auth_method.setter
    def auth_method(self, value: str | None) -> None:
        if value is None:
            value = "client_signature"
        if value not in AUTH_METHODS:
            raise ApiValueError(
                f"auth_method must be one of {', '.join(AUTH_METHODS)}, got {value!r}"
            )
        if value != "client_signature" and self.__dict__.get("_private_key") is not None:
            raise ApiValueError(f"auth_method={value!r} refused: {_ONLY_CLIENT_SIGNATURE}")
        self._auth_method = value

    @property
    def client_secret(self) -> str | None:
        """The API key's secret (an HMAC key); never shown in a ``repr`` or log line."""
        return self._client_secret

    @client_secret.setter
    def client_secret(self, value: str | None) -> None:
        value = _check_secret(value)
        if value and self.__dict__.get("_private_key") is not None:
            raise ApiValueError(_BOTH_KEYS)
        self._client_secret = value

    @property
    def private_key(self) -> PrivateKey | None:
        """The asymmetric API key's private key, loaded (a
        :class:`~openapi_client.asymmetric.PrivateKey`, whose ``repr`` names only its kind).

        Set it to the key's PEM (text or bytes; encrypted PEM needs ``private_key_password``,
        set first), to a loaded ``PrivateKey``, or to None. The key is checked at once:
        ``ApiValueError`` says what is wrong (not PEM, a public key, a wrong password, a key
        type Deribit does not take, RSA under 2048 bits), without quoting it. The PEM text is
        not kept. Needs the ``[asymmetric]`` extra (``ApiMissingDependencyError`` otherwise).
        """
        return self._private_key

    @private_key.setter
    def private_key(self, value: str | bytes | PrivateKey | None) -> None:
        if value is None:
            self._use_private_key(None, None)
            return
        from openapi_client import asymmetric  # raises ApiMissingDependencyError, naming the extra

        key = (
            value
            if isinstance(value, asymmetric.PrivateKey)
            else asymmetric.load_private_key(
                value, self.private_key_password, "Configuration.private_key"
            )
        )
        self._use_private_key(key, None)

    @property
    def private_key_file(self) -> str | None:
        """The PEM file ``private_key`` was loaded from, if it came from one.

        Setting it reads the file at once (nothing is written; an encrypted file stays encrypted
        on disk and is decrypted in memory with ``private_key_password``) and checks the key as
        ``private_key`` does. A file that other users may read or write (``mode & 0o077``, on
        POSIX systems) is used, with a warning on the ``openapi_client.configuration`` logger:
        restrict it with ``chmod 600``.
        """
        return self._private_key_file

    @private_key_file.setter
    def private_key_file(self, value: str | os.PathLike[str] | None) -> None:
        if value is None:
            if self._private_key_file is not None:
                self._use_private_key(None, None)
            return
        path = cast(str, _check_file(value, "Configuration.private_key_file"))  # not None
        from openapi_client import asymmetric  # raises ApiMissingDependencyError, naming the extra

        _warn_if_exposed(path)
        try:
            with open(path, "rb") as file:
                data = file.read(asymmetric.MAX_PEM_BYTES + 1)
        except OSError:
            data = None
        if data is None:
            raise ApiValueError(
                f"Configuration.private_key_file: the file cannot be read: {path!r}"
            )
        key = asymmetric.load_private_key(
            data, self.private_key_password, f"Configuration.private_key_file {path!r}"
        )
        self._use_private_key(key, path)

    def _use_private_key(self, key: PrivateKey | None, path: str | None) -> None:
        if key is not None:
            if self.client_secret:
                raise ApiValueError(_BOTH_KEYS)
            if self.auth_method != "client_signature":
                raise ApiValueError(
                    f"a private key with auth_method={self.auth_method!r} refused: "
                    f"{_ONLY_CLIENT_SIGNATURE}"
                )
        self._private_key = key
        self._private_key_file = path

    @property
    def session_name(self) -> str | None:
        """The Deribit session (``scope=session:NAME``) key-based tokens are requested for.

        A ``connection``-scoped token (``None`` here) dies with the connection that obtained it,
        and over HTTP every request may arrive on another connection; a session token works on
        any connection until it expires. Deribit allows 16 sessions per API key: processes that
        share a key should share a name, or use a few fixed ones.
        """
        return self._session_name

    @session_name.setter
    def session_name(self, value: str | None) -> None:
        if value is not None and (
            not isinstance(value, str) or _SESSION_NAME.fullmatch(value) is None
        ):
            raise ApiValueError(
                "session_name must be None or 1 to 64 letters, digits, '_', '.' or '-', "
                f"got {value!r}"
            )
        self._session_name = value

    @property
    def scope(self) -> str | None:
        """Permissions asked for with every key-based grant, on top of the session's scope:
        space-separated ``AREA:LEVEL`` entries, AREA one of ``account``, ``trade``, ``wallet``,
        ``block_trade``, ``block_rfq``, ``custody`` and LEVEL one of ``read``, ``read_write``,
        ``none`` (e.g. ``"account:read trade:none"``). Deribit grants no more than the API key
        allows; a method that needs more answers 13021 ``forbidden``. None (the default) asks for
        nothing narrower than the key's own permissions.
        """
        return self._scope

    @scope.setter
    def scope(self, value: str | None) -> None:
        self._scope = _check_scope(value)

    @property
    def request_timeout(self) -> Timeout:
        """Default timeout in seconds: a number, or a ``(connect, read)`` pair."""
        return self._request_timeout

    @request_timeout.setter
    def request_timeout(self, value: Timeout) -> None:
        self._request_timeout = check_timeout(value, "request_timeout")

    @property
    def debug(self) -> bool:
        """Log requests at DEBUG on the ``openapi_client`` and ``urllib3`` loggers.

        Configure logging (for example ``logging.basicConfig()``) to see the lines. Credentials are
        redacted from every line; ``http.client``'s own debug printing is never switched on.
        """
        return self._debug

    @debug.setter
    def debug(self, value: bool) -> None:
        self._debug = bool(value)
        # Off hands the loggers back to the logging configuration (their parents' levels).
        level = logging.DEBUG if value else logging.NOTSET
        for logger in self.logger.values():
            logger.setLevel(level)

    # -- construction helpers -----------------------------------------------------------------

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Configuration:
        """Build a configuration from the environment.

        Reads ``DERIBIT_ACCESS_TOKEN``, ``DERIBIT_CLIENT_ID``, ``DERIBIT_CLIENT_SECRET``,
        ``DERIBIT_PRIVATE_KEY_FILE`` and ``DERIBIT_PRIVATE_KEY_PASSWORD`` (an asymmetric key),
        ``DERIBIT_AUTH_METHOD``, ``DERIBIT_HOST`` and ``DERIBIT_TESTNET`` (``1``/``true``/``yes``).
        Keyword arguments override what the environment says; a ``host`` or ``testnet`` keyword
        replaces both ``DERIBIT_HOST`` and ``DERIBIT_TESTNET``. ``DERIBIT_TESTNET`` with a
        ``DERIBIT_HOST`` other than the testnet's raises ``ApiValueError``.
        """
        env = os.environ if environ is None else environ
        settings: dict[str, Any] = {
            "access_token": env.get("DERIBIT_ACCESS_TOKEN") or None,
            "client_id": env.get("DERIBIT_CLIENT_ID") or None,
            "client_secret": env.get("DERIBIT_CLIENT_SECRET") or None,
            "private_key_file": env.get("DERIBIT_PRIVATE_KEY_FILE") or None,
            "private_key_password": env.get("DERIBIT_PRIVATE_KEY_PASSWORD") or None,
            "auth_method": env.get("DERIBIT_AUTH_METHOD") or None,
        }
        # Where to connect: an explicit keyword (host or testnet) wins over the environment.
        if "host" not in overrides and "testnet" not in overrides:
            settings["host"] = env.get("DERIBIT_HOST") or None
            settings["testnet"] = env.get("DERIBIT_TESTNET", "").strip().lower() in _TRUE_WORDS
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def set_default(cls, default: Configuration | None) -> None:
        """Make ``default`` the configuration of every ``ApiClient()`` built without one."""
        cls._default = copy.copy(default)

    @classmethod
    def get_default_copy(cls) -> Configuration:
        """A copy of the default configuration (a new ``Configuration()`` if none was set)."""
        return copy.copy(cls._default) if cls._default is not None else cls()

    # -- presentation -------------------------------------------------------------------------

    def _auth_summary(self) -> str:
        if self.access_token:
            return "access_token"
        if self.token_provider is not None:
            return "token_provider"
        if self.client_id and self.private_key is not None:
            return f"{self.auth_method} (client_id={self.client_id!r}, {self.private_key.kind} key)"
        if self.client_id and self.client_secret:
            return f"{self.auth_method} (client_id={self.client_id!r})"
        return "none"

    def __repr__(self) -> str:
        parts = [f"host={self.host!r}", f"auth={self._auth_summary()!r}"]
        if not self.verify_ssl:
            parts.append("verify_ssl=False")
        if self.proxy:
            parts.append("proxy=set")
        parts.append(f"request_timeout={self.request_timeout!r}")
        if self.attempt_timeout != DEFAULT_ATTEMPT_TIMEOUT:
            parts.append(f"attempt_timeout={self.attempt_timeout!r}")
        if self.call_timeout != DEFAULT_CALL_TIMEOUT:
            parts.append(f"call_timeout={self.call_timeout!r}")
        if self.scope is not None:
            parts.append(f"scope={self.scope!r}")
        if self.rate_limit is not None:
            parts.append(f"rate_limit={self.rate_limit!r}")
        return f"Configuration({', '.join(parts)})"

    __str__ = __repr__

    def to_debug_report(self) -> str:
        """Versions and settings for a bug report (no credential)."""
        import platform
        from importlib.metadata import version

        return (
            f"openapi_client {__version__}\n"
            f"Python {platform.python_version()} on {platform.platform()}\n"
            f"urllib3 {version('urllib3')}\n"
            f"{self!r}"
        )


def _check_host_setting(value: Any) -> str:
    check_host(value)
    return str(value)


def _check_proxy(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiTypeError(f"Configuration.proxy must be a URL or None, got {type(value).__name__}")
    if any(ord(c) <= 32 or ord(c) == 127 for c in value):
        raise ApiValueError("Configuration.proxy must not contain spaces or control characters")
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        # Not quoted: a proxy URL may carry a password.
        raise ApiValueError(
            "Configuration.proxy must be an http:// or https:// URL with a host and a valid port"
        )
    return value


def _check_proxy_headers(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ApiTypeError("Configuration.proxy_headers must be a mapping of names to values")
    for name, header in value.items():
        problem = check_header(name, header, "Configuration.proxy_headers")
        if problem:
            raise ApiValueError(problem)
    return dict(value)


def _check_user_agent(value: Any) -> str:
    problem = check_header("User-Agent", value, "Configuration.user_agent")
    if problem:
        raise ApiValueError(problem)
    return str(value)


def _check_secret(value: Any) -> str | None:
    text = _optional_text(value, "Configuration.client_secret")
    if text is None:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ApiValueError("Configuration.client_secret contains control characters")
    register_secret(text)
    return text


_BOTH_KEYS = (
    "Configuration has a client_secret and a private key: a Deribit API key is either HMAC "
    "(client_secret) or asymmetric (private_key, private_key_file); set one and clear the other"
)


def _warn_if_exposed(path: str) -> None:
    """Warn, as ssh does for its keys, when other users may read or write a private key file."""
    if os.name != "posix":
        return  # no such mode bits to judge
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # reading it fails next, and says so
    if mode & 0o077:
        logger.warning(
            "the private key file %s is accessible to other users (mode %04o); restrict it "
            "with: chmod 600 %s",
            path,
            mode & 0o777,
            path,
        )


def _check_scope(value: Any) -> str | None:
    text = _optional_text(value, "Configuration.scope")
    if text is None:
        return None
    entries = text.split()
    if not entries:
        raise ApiValueError(
            "Configuration.scope must name at least one permission, e.g. 'account:read'; "
            "None asks for the API key's own"
        )
    areas: set[str] = set()
    for entry in entries:
        if entry == "connection" or entry.startswith("session:"):
            raise ApiValueError(
                f"Configuration.scope: {entry!r} is set with session_name (None for a "
                "connection-scoped token), not in scope"
            )
        area, _, level = entry.partition(":")
        if area not in SCOPE_AREAS or level not in SCOPE_LEVELS:
            raise ApiValueError(
                f"Configuration.scope: {entry!r} is not a permission; use AREA:LEVEL with AREA "
                f"one of {', '.join(SCOPE_AREAS)} and LEVEL one of {', '.join(SCOPE_LEVELS)}"
            )
        if area in areas:
            raise ApiValueError(f"Configuration.scope names {area!r} twice")
        areas.add(area)
    return " ".join(entries)


def _check_key_password(value: Any) -> str | bytes | None:
    if value is None or value == "" or value == b"":
        return None
    if not isinstance(value, (str, bytes)):
        raise ApiTypeError(
            "Configuration.private_key_password must be a string, bytes or None, got "
            f"{type(value).__name__}"
        )
    register_secret(value)
    return value


def _check_token(value: Any) -> str | None:
    # An empty token counts as none (documented); anything else must fit in a header.
    return _check_credential(value, "Configuration.access_token") if value else value


def _check_pool_size(name: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ApiValueError(f"{name} must be a whole number >= 1, got {value!r}")
        return value

    return check


def _check_assert_hostname(value: Any) -> Any:
    if value is None or value is False or value is True:
        return value
    if not isinstance(value, str) or not _HOST_NAME.fullmatch(value.strip("[]")):
        raise ApiValueError(
            f"Configuration.assert_hostname must be None, False or a host name, got {value!r}"
        )
    return value


def _check_retries(value: Any) -> Any:
    from openapi_client.retry import RetryPolicy

    RetryPolicy.from_setting(value)  # raises ApiTypeError/ApiValueError for a bad setting
    return value


def _check_rate_limit(value: Any) -> Any:
    if value is not None and not callable(getattr(value, "reserve", None)):
        raise ApiTypeError(
            "Configuration.rate_limit must be an openapi_client.RateLimit or None, "
            f"got {type(value).__name__}"
        )
    return value


def _check_provider(value: Any) -> Any:
    if value is not None and not callable(value):
        raise ApiTypeError("Configuration.token_provider must be a callable returning a token")
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "host": _check_host_setting,
    "access_token": _check_token,
    "client_id": lambda value: _check_credential(value, "Configuration.client_id", False),
    "private_key_password": _check_key_password,
    "token_provider": _check_provider,
    "token_refresh_margin": lambda value: _check_number(
        value, "Configuration.token_refresh_margin", minimum=-math.inf
    ),
    "ssl_ca_cert": lambda value: _check_file(value, "Configuration.ssl_ca_cert"),
    "cert_file": lambda value: _check_file(value, "Configuration.cert_file"),
    "key_file": lambda value: _check_file(value, "Configuration.key_file"),
    "assert_hostname": _check_assert_hostname,
    "proxy": _check_proxy,
    "proxy_headers": _check_proxy_headers,
    "connection_pool_maxsize": _check_pool_size("connection_pool_maxsize"),
    "max_connections": _check_pool_size("max_connections"),
    "user_agent": _check_user_agent,
    "attempt_timeout": lambda value: float(
        _check_number(value, "Configuration.attempt_timeout")
    ),
    "call_timeout": lambda value: float(_check_number(value, "Configuration.call_timeout")),
    "max_response_size": lambda value: _check_number(
        value, "Configuration.max_response_size", whole=True, unit="bytes"
    ),
    "retries": _check_retries,
    "rate_limit": _check_rate_limit,
    "verify_ssl": bool,
    "client_side_validation": bool,
    "allow_insecure_http": bool,
    "fast_path": bool,
}

#: Every attribute a Configuration may be given (properties are found on the class).
_SETTINGS = frozenset(
    {
        *_CHECKS,
        "auth_method",
        "client_secret",
        "private_key",
        "private_key_file",
        "session_name",
        "scope",
        "request_timeout",
        "debug",
        "testnet",
        "logger",
        "_auth_method",
        "_client_secret",
        "_private_key",
        "_private_key_file",
        "_session_name",
        "_scope",
        "_request_timeout",
        "_debug",
    }
)
