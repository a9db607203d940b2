"""A reverse proxy in front of kubeemu that stamps every request with a User-Agent.

With it the audit log tells the workers' requests from the watcher's (the Python client sends the
same User-Agent from both). Used by the RBAC test: the workers get a kubeconfig pointing at it.
Streamed answers are passed through chunk by chunk.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)


class UserAgentProxy:
    """``start()`` serves on a free loopback port in a thread; ``stop()`` ends it."""

    def __init__(self, upstream: str, user_agent: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.user_agent = user_agent
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.broken: list[str] = []
        """Streams that broke off mid-way (for a test's diagnostics)."""

    def start(self) -> str:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def kubeconfig(self, original: Path, path: Path) -> Path:
        """A copy of ``original`` whose clusters point at this proxy."""
        config = yaml.safe_load(original.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = self.url
        path.write_text(yaml.safe_dump(config))
        return path

    async def _serve(self) -> str:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{port}"

    async def _close(self) -> None:
        # the client side first: open watch streams end, so their handlers return at once
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["User-Agent"] = self.user_agent
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (aiohttp.ClientError, ConnectionError) as exc:
                # one side hung up mid-stream: hang up the other one too (never leave a client
                # waiting on a stream that will not go on)
                self.broken.append(f"{request.method} {request.rel_url}: {exc!r}")
                if request.transport is not None:
                    request.transport.close()
            return response
