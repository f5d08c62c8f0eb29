"""A bare aiohttp server answering every GET with fixed bytes: the baseline the simulator is measured against.

Same event loop (uvloop when present) and the same headers a Binance-style JSON answer needs,
nothing else.
"""
from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--body-file", required=True)
    args = ap.parse_args()
    with open(args.body_file, "rb") as fh:
        body = fh.read()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
