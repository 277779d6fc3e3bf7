"""The TLS context of a ``wss://`` connection, from the same settings as the HTTP side."""

from __future__ import annotations

import ssl
import warnings

from openapi_client.configuration import Configuration
from openapi_client.exceptions import ApiValueError
from openapi_client.net.tls import InsecureTLSWarning

__all__ = ["server_hostname", "ssl_context"]


def ssl_context(configuration: Configuration) -> ssl.SSLContext:
    """A client context: certifi's CA bundle (or ``ssl_ca_cert``), the client certificate of
    ``cert_file``/``key_file``, and no verification only when ``verify_ssl`` is off.

    :raises ApiValueError: a certificate, key or CA file cannot be loaded.
    """
    if configuration.verify_ssl:
        import certifi

        cafile = configuration.ssl_ca_cert or certifi.where()
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as error:
            raise ApiValueError(
                f"Configuration.ssl_ca_cert cannot be loaded ({type(error).__name__}: "
                f"{getattr(error, 'strerror', None) or error})"
            ) from None
        if configuration.assert_hostname is False:
            context.check_hostname = False
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        warnings.warn(
            "TLS certificate verification is off (Configuration.verify_ssl = False): anyone on "
            "the network path can read and change the WebSocket session and its token.",
            InsecureTLSWarning,
            stacklevel=4,
        )
    if configuration.cert_file:
        try:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        except (OSError, ssl.SSLError) as error:
            raise ApiValueError(
                "Configuration.cert_file/key_file cannot be loaded "
                f"({type(error).__name__}: {getattr(error, 'strerror', None) or error})"
            ) from None
    return context


def server_hostname(configuration: Configuration) -> str | None:
    """The name the server's certificate must carry, when ``assert_hostname`` names one."""
    expected = configuration.assert_hostname
    return expected if isinstance(expected, str) else None
