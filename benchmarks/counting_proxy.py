"""A counting HTTP reverse proxy for benchmarks: forwards every request to ``--target`` and
counts it by method; ``GET /__counts`` answers the counts since the last ``POST /__reset``.

    python benchmarks/counting_proxy.py --target http://127.0.0.1:8000 --port 9000

It runs in its own process so that the clients being measured do not share its event loop.
Bodies are buffered (the hub API's answers are small JSON); keep-alive on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter

from tornado import httpclient, web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
# The Host header is forwarded as is: the hub builds its pagination "next" URLs from it, and a
# client that follows them must come back through this proxy to be counted.


class Counts:
    def __init__(self) -> None:
        self.by_method: Counter[str] = Counter()
        self.by_path: Counter[str] = Counter()


class ForwardHandler(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")  # type: ignore[assignment]

    def initialize(self, target: str, counts: Counts, client: httpclient.AsyncHTTPClient) -> None:
        self.target = target.rstrip("/")
        self.counts = counts
        self.client = client

    async def _forward(self) -> None:
        method = self.request.method or "GET"
        self.counts.by_method[method] += 1
        self.counts.by_path[f"{method} {self.request.path}"] += 1
        headers = {k: v for k, v in self.request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = self.request.body if method in ("POST", "PUT", "PATCH") else None
        if method == "DELETE" and self.request.body:
            body = self.request.body
        req = httpclient.HTTPRequest(
            self.target + self.request.uri,
            method=method,
            headers=headers,
            body=body,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            request_timeout=300,
        )
        resp = await self.client.fetch(req, raise_error=False)
        self.set_status(resp.code, resp.reason)
        for k, v in resp.headers.get_all():
            if k.lower() not in HOP_BY_HOP:
                self.add_header(k, v)
        if resp.body:
            self.write(resp.body)

    get = post = put = patch = delete = head = options = _forward  # type: ignore[assignment]


class CountsHandler(web.RequestHandler):
    def initialize(self, counts: Counts) -> None:
        self.counts = counts

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "total": sum(self.counts.by_method.values()),
                    "by_method": dict(self.counts.by_method),
                    "by_path": dict(self.counts.by_path.most_common(20)),
                }
            )
        )

    def post(self) -> None:
        self.counts.by_method.clear()
        self.counts.by_path.clear()
        self.set_status(204)


async def serve(target: str, port: int) -> None:
    counts = Counts()
    client = httpclient.AsyncHTTPClient(max_clients=64)
    app = web.Application(
        [
            (r"/__counts", CountsHandler, {"counts": counts}),
            (r"/__reset", CountsHandler, {"counts": counts}),
            (r"/.*", ForwardHandler, {"target": target, "counts": counts, "client": client}),
        ]
    )
    app.listen(port, address="127.0.0.1")
    print(f"counting proxy on 127.0.0.1:{port} -> {target}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    asyncio.run(serve(args.target, args.port))


if __name__ == "__main__":
    main()
