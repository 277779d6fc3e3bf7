"""TLS: the client context of every connection the library makes, from the configuration."""

from __future__ import annotations

import ssl

from openapi_client.configuration import Configuration
from openapi_client.exceptions import ApiValueError

__all__ = ["InsecureTLSWarning", "client_context"]


class InsecureTLSWarning(UserWarning):
    """Issued once per client when ``verify_ssl`` is off."""


def client_context(configuration: Configuration) -> ssl.SSLContext:
    """The TLS settings of the direct path, checked now: a bad file is a setting error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
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
        if configuration.assert_hostname is False:
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


def _no_password() -> bytes:
    # Without this, OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    return b""


def _error_text(error: BaseException) -> str:
    return str(getattr(error, "reason", None) or getattr(error, "strerror", None) or error)
