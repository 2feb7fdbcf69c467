#!/usr/bin/env python3
"""A braid subscriber in Python: the protocol is JSON over a WebSocket, so any language can read predictions.

    python3 examples/subscriber.py [ws://127.0.0.1:8080] [stream ...]

Needs the `websockets` package (Debian: apt install python3-websockets; elsewhere: pip install websockets).
With a token: BRAID_TOKEN=... python3 examples/subscriber.py ws://host:8080
Reconnects with exponential backoff and jitter, and subscribes again, when the connection drops.
"""
import asyncio
import json
import os
import random
import sys
import urllib.parse

import websockets


def endpoint(base: str) -> str:
    url = base.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/subscribe"
    token = os.environ.get("BRAID_TOKEN")
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token else url


def show(message: dict) -> None:
    kind = message["type"]
    if kind == "welcome":
        model = message.get("model", {}).get("id", "?")
        streams = ", ".join(message["streams"]) or "none"
        print(f"connected: protocol v{message['version']}, model {model}, labels {', '.join(message['labels'])}, "
              f"live streams {streams}", flush=True)
    elif kind == "prediction":
        scores = "  ".join(f"{label} {score:.2f}" for label, score in message["scores"].items())
        partial = "  (partial)" if message.get("partial") else ""
        print(f"{message['streamId']} #{message['windowIndex']} {scores}  latency {message['latencyMs']:.0f} ms{partial}",
              flush=True)
    elif kind == "stream":
        print(f"stream {message['streamId']} {message['event']}", flush=True)
    elif kind == "error":
        print(f"server error {message['code']}: {message['message']}", file=sys.stderr, flush=True)


async def main(base: str, streams: list) -> None:
    attempt = 0
    while True:
        try:
            # The server pings every 10 s; websockets answers pings and pings back itself.
            async with websockets.connect(endpoint(base), max_size=None) as ws:
                await ws.send(json.dumps({"subscribe": streams or "*"}))
                async for text in ws:
                    message = json.loads(text)
                    if message["type"] == "subscribed":
                        attempt = 0
                    show(message)
        except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake) as error:
            delay = random.uniform(0, min(10.0, 0.25 * 2 ** attempt))
            attempt += 1
            print(f"connection lost ({error}); reconnecting in {delay:.2f} s", file=sys.stderr, flush=True)
            await asyncio.sleep(delay)


if __name__ == "__main__":
    args = sys.argv[1:]
    try:
        asyncio.run(main(args[0] if args else "ws://127.0.0.1:8080", args[1:]))
    except KeyboardInterrupt:
        pass
