"""Who may call the server, checked before any route runs (a pure ASGI middleware).

- A body over the cap is refused (413) before it is read whole.
- On loopback the Host header must name this machine: a page on another site that re-points its
  DNS name at 127.0.0.1 (DNS rebinding) is refused (421).
- Writes (anything but GET/HEAD/OPTIONS) from another origin are refused (403): a web page the
  user visits cannot drive the server through their browser.
- With an API key, every request must carry it: `Authorization: Bearer KEY`, `X-API-Key: KEY`, or
  HTTP Basic with the key as password (so a browser can open the UI).
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from kekong.server.config import ServerConfig

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]", "testserver"}


class Guard:
    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.hosts = _LOCAL_NAMES | {h.lower() for h in config.allowed_hosts}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], headers)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        declared = headers.get("content-length", "")
        cap = self.config.limits.max_body_bytes
        if declared.isdigit() and int(declared) > cap:
            await _respond(send, 413, f"request body is {declared} bytes; this server takes at most {cap}")
            return
        await self.app(scope, _capped(receive, cap), send)

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str, dict[str, str]] | None:
        host = _hostname(headers.get("host", ""))
        if self.config.loopback and host not in self.hosts:
            return 421, f"Host {headers.get('host', '')!r} is not this server (DNS rebinding is refused)", {}
        if method not in _SAFE_METHODS:
            origin = headers.get("origin")
            if origin and origin != "null" and _hostname(urlsplit(origin).netloc) not in self.hosts | {host}:
                return 403, f"cross-origin request from {origin} refused", {}
            if headers.get("sec-fetch-site") == "cross-site":
                return 403, "cross-site request refused", {}
        if self.config.api_key and not self._authorised(headers):
            return 401, "missing or wrong API key", {"www-authenticate": 'Basic realm="kekong"'}
        return None

    def _authorised(self, headers: dict[str, str]) -> bool:
        key = self.config.api_key or ""
        given = headers.get("x-api-key", "")
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            given = value.strip()
        elif scheme.lower() == "basic":
            try:
                given = base64.b64decode(value.strip()).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                given = ""
        return bool(given) and hmac.compare_digest(given.encode(), key.encode())


class BodyTooLarge(Exception):
    pass


def _capped(receive: Any, cap: int) -> Any:
    seen = 0

    async def wrapped() -> dict:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise BodyTooLarge(f"request body is over {cap} bytes")
        return message

    return wrapped


def _hostname(netloc: str) -> str:
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


async def _respond(send: Any, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": "refused", "detail": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
