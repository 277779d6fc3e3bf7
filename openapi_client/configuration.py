"""Settings for a client: where to connect, how to authenticate, and how patient to be."""

from __future__ import annotations

import copy
import logging
import math
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple, Union

from openapi_client._version import __version__
from openapi_client.exceptions import ApiTypeError, ApiValueError

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    from urllib3.util.retry import Retry

    from openapi_client.rate_limit import RateLimit
    from openapi_client.retry import RetryPolicy

__all__ = ["PRODUCTION_HOST", "TESTNET_HOST", "Configuration", "Timeout"]

PRODUCTION_HOST = "https://www.deribit.com/api/v2"
TESTNET_HOST = "https://test.deribit.com/api/v2"

#: A timeout in seconds: one number for both connecting and reading, or ``(connect, read)``.
Timeout = Union[float, Tuple[float, float]]

#: Connect and read timeouts used when a call passes no ``_request_timeout``.
DEFAULT_REQUEST_TIMEOUT: Tuple[float, float] = (5.0, 10.0)

AUTH_METHODS = ("client_signature", "client_credentials", "signature")

#: The Deribit session that key-based tokens are asked for (``scope=session:NAME``).
DEFAULT_SESSION_NAME = "openapi-client"
_SESSION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

_TRUE_WORDS = {"1", "true", "yes", "on"}


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

    Every setting is a constructor keyword and an attribute of the same name.

    Connection:
        ``host`` (the API root, default production ``https://www.deribit.com/api/v2``;
        ``testnet=True`` selects ``https://test.deribit.com/api/v2``), ``verify_ssl`` (on),
        ``ssl_ca_cert`` (a CA bundle path; default certifi's), ``cert_file``/``key_file`` (a client
        certificate), ``proxy``, ``proxy_headers``, ``connection_pool_maxsize`` (connections kept
        per host), ``user_agent``, ``allow_insecure_http`` (send credentials over plain http to a
        host that is not loopback; off).

    Credentials:
        ``access_token`` (a bearer token; takes precedence), ``token_provider`` (a callable
        returning a token), ``client_id``/``client_secret`` with ``auth_method``
        (``"client_signature"``, the default, ``"client_credentials"`` or ``"signature"``) and
        ``token_refresh_margin`` (seconds before expiry to refresh, default 60) and
        ``session_name`` (the Deribit session key-based tokens belong to, default
        ``"openapi-client"``, so they work on every connection; ``None`` asks for
        connection-scoped tokens, which Deribit ties to the connection that obtained them).

    Behaviour:
        ``request_timeout`` (seconds, a number or ``(connect, read)``; default ``(5, 10)``),
        ``retries`` (an int, a urllib3 ``Retry`` or a :class:`~openapi_client.RetryPolicy`;
        default 3 retries), ``rate_limit`` (a :class:`~openapi_client.RateLimit`, default
        ``None``), ``client_side_validation`` (on), ``debug`` (off).
    """

    _default: Optional["Configuration"] = None

    def __init__(
        self,
        host: Optional[str] = None,
        access_token: Optional[str] = None,
        *,
        testnet: bool = False,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        auth_method: Optional[str] = None,
        token_provider: Optional[Callable[[], str]] = None,
        token_refresh_margin: float = 60.0,
        session_name: Optional[str] = DEFAULT_SESSION_NAME,
        verify_ssl: bool = True,
        ssl_ca_cert: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        assert_hostname: Optional[Union[str, bool]] = None,
        proxy: Optional[str] = None,
        proxy_headers: Optional[Mapping[str, str]] = None,
        connection_pool_maxsize: int = 16,
        client_side_validation: bool = True,
        debug: bool = False,
        logger: Optional[Mapping[str, logging.Logger]] = None,
        user_agent: Optional[str] = None,
        request_timeout: Timeout = DEFAULT_REQUEST_TIMEOUT,
        retries: Union[int, "Retry", "RetryPolicy", None] = None,
        rate_limit: Optional["RateLimit"] = None,
        allow_insecure_http: bool = False,
    ) -> None:
        self.host: str = host or (TESTNET_HOST if testnet else PRODUCTION_HOST)
        self.access_token = access_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_method = auth_method
        self.token_provider = token_provider
        self.token_refresh_margin = token_refresh_margin
        self.session_name = session_name
        self.verify_ssl = verify_ssl
        self.ssl_ca_cert = ssl_ca_cert
        self.cert_file = cert_file
        self.key_file = key_file
        self.assert_hostname = assert_hostname
        self.proxy = proxy
        self.proxy_headers: Optional[Dict[str, str]] = (
            dict(proxy_headers) if proxy_headers is not None else None
        )
        self.connection_pool_maxsize = connection_pool_maxsize
        self.client_side_validation = client_side_validation
        self.user_agent: str = user_agent or (
            f"openapi_client/{__version__} (Deribit; python "
            f"{sys.version_info[0]}.{sys.version_info[1]})"
        )
        self.request_timeout = request_timeout
        self.retries = retries
        self.rate_limit = rate_limit
        self.allow_insecure_http = allow_insecure_http
        #: The loggers ``debug`` switches: this package's and urllib3's (keys ``package_logger``
        #: and ``urllib3_logger``; the ``logger`` keyword replaces either).
        self.logger: Dict[str, logging.Logger] = {
            "package_logger": logging.getLogger("openapi_client"),
            "urllib3_logger": logging.getLogger("urllib3"),
        }
        if logger is not None:
            self.logger.update(logger)
        self._debug = False
        if debug:
            self.debug = True

    # -- settings with behaviour --------------------------------------------------------------

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
    def auth_method(self, value: Optional[str]) -> None:
        if value is None:
            value = "client_signature"
        if value not in AUTH_METHODS:
            raise ApiValueError(
                f"auth_method must be one of {', '.join(AUTH_METHODS)}, got {value!r}"
            )
        self._auth_method = value

    @property
    def session_name(self) -> Optional[str]:
        """The Deribit session (``scope=session:NAME``) key-based tokens are requested for.

        A ``connection``-scoped token (``None`` here) dies with the connection that obtained it,
        and over HTTP every request may arrive on another connection; a session token works on
        any connection until it expires. Deribit allows 16 sessions per API key: processes that
        share a key should share a name, or use a few fixed ones.
        """
        return self._session_name

    @session_name.setter
    def session_name(self, value: Optional[str]) -> None:
        if value is not None and (
            not isinstance(value, str) or _SESSION_NAME.fullmatch(value) is None
        ):
            raise ApiValueError(
                "session_name must be None or 1 to 64 letters, digits, '_', '.' or '-', "
                f"got {value!r}"
            )
        self._session_name = value

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
        cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any
    ) -> "Configuration":
        """Build a configuration from the environment.

        Reads ``DERIBIT_ACCESS_TOKEN``, ``DERIBIT_CLIENT_ID``, ``DERIBIT_CLIENT_SECRET``,
        ``DERIBIT_AUTH_METHOD``, ``DERIBIT_HOST`` and ``DERIBIT_TESTNET`` (``1``/``true``/``yes``).
        Keyword arguments override what the environment says.
        """
        env = os.environ if environ is None else environ
        settings: Dict[str, Any] = {
            "access_token": env.get("DERIBIT_ACCESS_TOKEN") or None,
            "client_id": env.get("DERIBIT_CLIENT_ID") or None,
            "client_secret": env.get("DERIBIT_CLIENT_SECRET") or None,
            "auth_method": env.get("DERIBIT_AUTH_METHOD") or None,
            "host": env.get("DERIBIT_HOST") or None,
            "testnet": env.get("DERIBIT_TESTNET", "").strip().lower() in _TRUE_WORDS,
        }
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def set_default(cls, default: Optional["Configuration"]) -> None:
        """Make ``default`` the configuration of every ``ApiClient()`` built without one."""
        cls._default = copy.copy(default)

    @classmethod
    def get_default_copy(cls) -> "Configuration":
        """A copy of the default configuration (a new ``Configuration()`` if none was set)."""
        return copy.copy(cls._default) if cls._default is not None else cls()

    # -- presentation -------------------------------------------------------------------------

    def _auth_summary(self) -> str:
        if self.access_token:
            return "access_token"
        if self.token_provider is not None:
            return "token_provider"
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
