"""Refusing oversized bodies before they are read into memory or onto disk.

A declared Content-Length over the limit is answered at once; a chunked body
is counted as it streams and cut off when it passes the limit.
"""

from __future__ import annotations

import json

from fastapi import HTTPException


class BodySizeLimit:
    def __init__(self, app, max_bytes: int, on_reject=lambda: None):
        self.app, self.max_bytes, self.on_reject = app, max_bytes, on_reject

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        try:
            too_big = declared is not None and int(declared) > self.max_bytes
        except ValueError:
            too_big = False
        if too_big:
            self.on_reject()
            return await self._reject(send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    self.on_reject()
                    # FastAPI turns other exceptions raised while parsing a body into a
                    # generic 400; an HTTPException passes through to the error handlers.
                    raise HTTPException(413, self._message())
            return message

        return await self.app(scope, counting_receive, send)

    def _message(self) -> str:
        return f"the request body exceeds {self.max_bytes} bytes"

    async def _reject(self, send):
        body = json.dumps({"error": {"code": "body_too_large", "message": self._message(), "field": None}}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
