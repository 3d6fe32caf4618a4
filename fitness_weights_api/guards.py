"""Checks that every request passes before any route runs: its ``Host``, its ``Origin`` and its body's size.

:class:`HostOriginMiddleware` answers only requests whose ``Host`` is an allowed name (a DNS-rebinding page
reaches the service under its own name, which is not allowed) and whose ``Origin``, when a browser sends one, is
the service itself (403 otherwise). There is no CORS middleware, so no other origin may read an answer.
:class:`BodyLimitMiddleware` refuses a body larger than the limit (413): from its ``Content-Length`` before a
byte of it is read, or, sent without one, as soon as more than the limit has arrived; nothing larger is ever
buffered or parsed, so large bodies cannot hold up the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException

__all__ = ["BodyLimitMiddleware", "HostOriginMiddleware"]


def _host_name(host: str) -> str:
    """``host[:port]`` (``[v6]:port`` too) without the port, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostOriginMiddleware:
    """Refuse requests to another ``Host`` name (400) and cross-origin ones (403), before anything else runs.

    Args:
        app: The ASGI app.
        allowed_hosts: Host names without port; ``"*"`` allows any host (the ``Origin`` check stays).
    """

    def __init__(self, app: Any, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed = frozenset(host.lower().strip("[]") for host in allowed_hosts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check the headers; pass the request on, or answer it."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {name: value for name, value in scope["headers"] if name in (b"host", b"origin")}
        host = headers.get(b"host", b"").decode("latin-1")
        if not host or not (self.any_host or _host_name(host) in self.allowed):
            await _refuse(scope, send, 400, "the Host header names a host this service does not answer to")
            return
        origin = headers.get(b"origin")
        if origin is not None and not _same_origin(origin.decode("latin-1"), host, scope):
            await _refuse(scope, send, 403, "cross-origin requests are refused")
            return
        await self.app(scope, receive, send)


def _same_origin(origin: str, host: str, scope: dict[str, Any]) -> bool:
    parts = urlsplit(origin.strip().lower())
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    return parts.scheme == scheme and parts.netloc == host.strip().lower()


async def _refuse(scope: dict[str, Any], send: Callable[..., Any], status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with a 413, before they are read (see the module docstring).

    Args:
        app: The ASGI app.
        max_bytes: The largest body taken.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"the request body is larger than {max_bytes} bytes"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check the declared length, then count what arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:  # the server refused a malformed length already
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _refuse(scope, send, 413, self.message)
                return
        received = 0

        async def receive_bounded() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # FastAPI passes an HTTPException on to the app's handler
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, receive_bounded, send)
