"""What every HTTP request goes through before the app (ASGI middleware): a request id, the Host and Origin
checks, the concurrency limit, the body size limit and the upload deadline."""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

log = logging.getLogger("tlearn")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")


class Refusal(Exception):
    """A request refused by a limit; raised from inside the app's body reads, answered with a JSON error."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class BodyTooLarge(Refusal):
    status, code = 413, "too_large"


class UploadTimeout(Refusal):
    status, code = 408, "timeout"


def allowed_hosts(bind: str, port: int, extra: tuple[str, ...] = ()) -> frozenset[str] | None:
    """Host header values accepted when bound to a loopback address (DNS rebinding); None: any host."""
    if bind not in LOOPBACK_HOSTS:
        return None
    names = ["localhost", "127.0.0.1", "[::1]", *extra]
    return frozenset(n.lower() for name in names for n in (name, f"{name}:{port}"))


def json_response(status: int, body: dict, request_id: str, extra_headers: tuple = ()) -> list[dict]:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               (b"x-request-id", request_id.encode()), (b"connection", b"close"), *extra_headers]
    return [{"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": data}]


class RequestGuard:
    """Refuse, before the app runs: foreign Host headers on a local bind, cross-origin posts, more requests than
    max_concurrency at once (503), bodies over max_body_bytes (413, also mid-stream) and bodies that are not
    complete upload_timeout_s after the request started (408: a client trickling bytes holds no slot for long).
    Each request gets an id (scope state "request_id", X-Request-ID header) that the server log repeats."""

    def __init__(self, app, *, max_body_bytes: int, upload_timeout_s: float, max_concurrency: int,
                 hosts: frozenset[str] | None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.upload_timeout_s = upload_timeout_s
        self.max_concurrency = max(1, int(max_concurrency))
        self.hosts = hosts
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex[:12]
        scope.setdefault("state", {})["request_id"] = request_id
        headers = dict(scope.get("headers") or [])
        refusal = self._check_headers(scope, headers)
        if refusal is not None:
            status, code, detail = refusal
            log.warning("request %s refused (%s): %s", request_id, code, detail)
            return await self._send_all(send, json_response(status, {"error": code, "detail": detail,
                                                                     "request_id": request_id}, request_id))
        if self.in_flight >= self.max_concurrency:
            log.warning("request %s refused: %d requests already in progress", request_id, self.in_flight)
            return await self._send_all(send, json_response(
                503, {"error": "busy", "detail": "the server is busy; retry shortly", "request_id": request_id},
                request_id, ((b"retry-after", b"1"),)))
        self.in_flight += 1
        try:
            await self._run(scope, receive, send, headers, request_id)
        finally:
            self.in_flight -= 1

    def _check_headers(self, scope, headers: dict) -> tuple[int, str, str] | None:
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        if self.hosts is not None and host and host not in self.hosts:
            return 403, "forbidden_host", ("this server only answers requests addressed to localhost; start it "
                                           "with --allow-host NAME to accept another name")
        origin = headers.get(b"origin")
        if origin is not None and scope["method"].encode() not in _SAFE_METHODS:
            own = {f"http://{host}", f"https://{host}"}
            if origin.decode("latin-1").strip().lower() not in own:
                return 403, "cross_origin", "cross-origin requests are refused; post from this server's own page"
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return 413, "too_large", f"request body over {self.max_body_bytes} bytes; send fewer or smaller images"
        return None

    async def _run(self, scope, receive, send, headers: dict, request_id: str) -> None:
        seen = 0
        body_done = False
        started = False
        deadline = time.monotonic() + self.upload_timeout_s

        async def guarded_receive():
            nonlocal seen, body_done
            if body_done:  # afterwards the app only listens for a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise UploadTimeout(f"the upload did not complete within {self.upload_timeout_s:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(f"request body over {self.max_body_bytes} bytes; send fewer or smaller images")
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except Refusal as exc:  # raised where the app did not turn it into a response itself
            log.warning("request %s refused (%s): %s", request_id, exc.code, exc.detail)
            if not started:
                await self._send_all(send, json_response(exc.status, {"error": exc.code, "detail": exc.detail,
                                                                      "request_id": request_id}, request_id))
        if seen > self.max_body_bytes and not body_done:
            await self._drain(receive, deadline, self.max_body_bytes)

    @staticmethod
    async def _drain(receive, deadline: float, limit: int) -> None:
        """Read and discard the rest of a refused body, at most `limit` more bytes and until the upload deadline:
        closing with unread data resets the connection, and the client would lose the 413 already sent."""
        drained = 0
        while drained <= limit:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    @staticmethod
    async def _send_all(send, messages: list[dict]) -> None:
        for message in messages:
            await send(message)
