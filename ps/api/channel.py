"""How a client reaches the server: its channel (plaintext or TLS) and the shared token it sends.

The token travels as call metadata `authorization: Bearer <token>` (ps/service/auth.py checks it).
It is never logged, never put in status, summaries or metrics.
"""
from __future__ import annotations

import os
from pathlib import Path

import grpc

from ps.api.spec import ConfigError

TOKEN_ENV = "A3C_TOKEN"
METADATA_KEY = "authorization"


def load_token(token_file: str = "", environ=os.environ) -> str:
    """The shared token from --token-file, else from A3C_TOKEN; "" when neither is set."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as err:
            raise ConfigError(f"cannot read --token-file {token_file}: {err.strerror}") from None
        if not token:
            raise ConfigError(f"--token-file {token_file} is empty")
        return token
    return environ.get(TOKEN_ENV, "").strip()


def call_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Metadata a client attaches to every call (empty without a token)."""
    return ((METADATA_KEY, f"Bearer {token}"),) if token else ()


def client_channel(address: str, tls_ca: str = "", options=()) -> grpc.Channel:
    """A channel to the server: TLS verified against `tls_ca` when given, plaintext otherwise."""
    if not tls_ca:
        return grpc.insecure_channel(address, options=list(options))
    try:
        ca = Path(tls_ca).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read --tls-ca {tls_ca}: {err.strerror}") from None
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca), options=list(options))
