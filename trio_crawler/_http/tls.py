"""TLS: the crawl's client context, made once from the settings."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator

import httpx

from .._exceptions import SettingsError
from .._settings import Settings


def make_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The crawl's TLS client context; a one-line :class:`SettingsError` for a bad file."""
    if settings.verify_tls:
        ctx = httpx.create_ssl_context(trust_env=settings.trust_env)
    else:
        ctx = httpx.create_ssl_context(verify=False)
    if settings.ca_bundle is not None:
        path = settings.ca_bundle
        with _settings_error("ca_bundle", path):
            if os.path.isdir(path):
                ctx.load_verify_locations(capath=path)
            else:
                ctx.load_verify_locations(cafile=path)
    if settings.client_cert is not None:
        # an encrypted key would make OpenSSL prompt on the terminal: answer "" instead
        with _settings_error("client_cert", settings.client_key or settings.client_cert):
            ctx.load_cert_chain(settings.client_cert, settings.client_key, password=lambda: b"")
    return ctx


@contextlib.contextmanager
def _settings_error(name: str, path: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:  # ssl.SSLError included
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        reason = " ".join(str(reason).split())
        raise SettingsError(f"cannot load {name} {path!r}: {reason}") from None
