"""Who may talk to the parameter server: a shared token checked on every call, and TLS (server side;
the client side is ps/api/channel.py).

The token travels as call metadata `authorization: Bearer <token>`; a server interceptor compares
it in constant time and answers UNAUTHENTICATED (counted as rejected["unauthenticated"]) when it is
missing or wrong. The token itself is never logged, never put in status, summaries or metrics.

The standard gRPC health service (grpc.health.v1.Health) is exempt: Kubernetes' gRPC probes cannot
send metadata, and it reveals nothing but SERVING / NOT_SERVING.

Safe default: a server bound to a non-loopback address without a token refuses to start unless
--insecure says that is intended.
"""
from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

import grpc

from ps.api.channel import METADATA_KEY, TOKEN_ENV
from ps.api.spec import ConfigError

EXEMPT_PREFIX = "/grpc.health.v1.Health/"
UNAUTHENTICATED_REASON = "unauthenticated"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to anything


def check_exposure(host: str, token: str, insecure: bool) -> None:
    """Refuse to serve a non-loopback address to anyone who can open a socket, unless told to."""
    if not token and not insecure and not is_loopback(host):
        raise ConfigError(f"--host {host} is reachable from other machines but no token is set: "
                          f"pass --token-file PATH (or set {TOKEN_ENV}), or --insecure to allow it")


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Lets a call through only with the right token; `on_reject(reason)` counts the others.

    The token is read from the call's metadata, before any of its body: a refused call is answered
    by a handler that never reads the request, so a client without the token cannot make the server
    receive (and hold) a large message."""

    def __init__(self, token: str, on_reject) -> None:
        self._expected = f"Bearer {token}".encode()
        self._on_reject = on_reject

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method or ""
        if method.startswith(EXEMPT_PREFIX):
            return await continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get(METADATA_KEY, "")
        if hmac.compare_digest(sent.encode() if isinstance(sent, str) else sent, self._expected):
            return await continuation(handler_call_details)
        self._on_reject(UNAUTHENTICATED_REASON)
        return _deny("missing token" if not sent else "wrong token")


def _deny(why: str) -> grpc.RpcMethodHandler:
    """A handler that answers UNAUTHENTICATED at once. It takes the request as a stream and never
    reads it, whatever the method's own kind: nothing of the body is received for it."""
    message = f"{why}: this parameter server requires its shared token (--token-file or {TOKEN_ENV})"

    async def abort(_requests, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.stream_unary_rpc_method_handler(abort)


def server_credentials(cert_file: str, key_file: str) -> grpc.ServerCredentials:
    try:
        key, cert = Path(key_file).read_bytes(), Path(cert_file).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read TLS file {err.filename}: {err.strerror}") from None
    return grpc.ssl_server_credentials([(key, cert)])


def local_worker_args(config) -> list[str]:
    """Flags for --local-workers so they can reach this server: its token file and, with TLS, its
    own certificate as the CA to trust (A3C_TOKEN is inherited through the environment)."""
    args = ["--token-file", config.token_file] if config.token_file else []
    return args + (["--tls-ca", config.tls_cert] if config.tls_cert else [])
