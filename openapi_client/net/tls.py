"""TLS: the one function that builds every client TLS context the library uses.

The direct HTTP path, urllib3's path (its pools, and its connection to an https proxy) and the
WebSocket session all get their context from :func:`client_context`, so the same settings mean
the same checks everywhere.
"""

from __future__ import annotations

import ssl
import warnings

from openapi_client.configuration import Configuration
from openapi_client.exceptions import ApiValueError

__all__ = ["InsecureTLSWarning", "client_context", "server_hostname", "warn_unverified"]


class InsecureTLSWarning(UserWarning):
    """Issued once per client when ``verify_ssl`` is off."""


def client_context(configuration: Configuration, *, check_hostname: bool = True) -> ssl.SSLContext:
    """A new client context from the TLS settings of ``configuration``, its files loaded now (a
    bad file is a setting error, not a failed call).

    * TLS 1.2 or later, offering HTTP/1.1 by ALPN (a WebSocket opens over HTTP/1.1 too);
    * the server's certificate verified against certifi's CA bundle, or ``ssl_ca_cert``; nothing
      verified when ``verify_ssl`` is off;
    * its host name checked by the TLS library (in its subject alternative names, never the
      common name) unless ``assert_hostname`` is False, or ``check_hostname`` is: the caller then
      checks the certificate's names itself (urllib3 does, against the host or a name given as
      ``assert_hostname``);
    * the client certificate of ``cert_file`` and ``key_file``. An encrypted key is refused:
      OpenSSL would otherwise stop and ask for its passphrase on the terminal;
    * no key log, whatever ``SSLKEYLOGFILE`` says: the session keys never reach a file.

    Each call builds a new context: urllib3 changes some settings of the context it is given.

    :raises ApiValueError: a CA bundle, certificate or key that cannot be loaded, or a key
        without its certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.hostname_checks_common_name = False
    if configuration.verify_ssl:
        import certifi

        ca = configuration.ssl_ca_cert or certifi.where()
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError, ValueError) as error:
            raise ApiValueError(
                f"Configuration.ssl_ca_cert: {ca!r} is not a usable CA bundle (PEM "
                f"certificates expected): {_error_text(error)}"
            ) from error
        if configuration.assert_hostname is False or not check_hostname:
            context.check_hostname = False
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file or configuration.key_file:
        if not configuration.cert_file:
            raise ApiValueError("Configuration.key_file is set without cert_file")
        try:
            context.load_cert_chain(
                configuration.cert_file, configuration.key_file, password=_no_password
            )
        except (ssl.SSLError, OSError, ValueError) as error:
            raise ApiValueError(
                "Configuration.cert_file/key_file: not a usable client certificate and key "
                f"(PEM, key unencrypted and matching the certificate): {_error_text(error)}"
            ) from error
    return context


def server_hostname(configuration: Configuration) -> str | None:
    """The name the server's certificate must carry, when ``assert_hostname`` names one."""
    expected = configuration.assert_hostname
    return expected if isinstance(expected, str) else None


def warn_unverified(exposed: str, stacklevel: int) -> None:
    """Warn (:class:`InsecureTLSWarning`) that ``verify_ssl`` is off and what that exposes;
    ``stacklevel`` as ``warnings.warn`` would take it in the caller."""
    warnings.warn(
        "TLS certificate verification is off (Configuration.verify_ssl = False): anyone on the "
        f"network path can read and change {exposed}.",
        InsecureTLSWarning,
        stacklevel=stacklevel + 1,
    )


def _no_password() -> bytes:
    # Asked for the passphrase of an encrypted key: none. Without a callback, OpenSSL would
    # prompt on the terminal and wait.
    return b""


def _error_text(error: BaseException) -> str:
    return str(getattr(error, "reason", None) or getattr(error, "strerror", None) or error)
