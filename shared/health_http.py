"""``/healthz``, ``/readyz`` and Prometheus ``/metrics`` on a small HTTP port.

A stdlib threaded server in a daemon thread: it works beside asyncio (aggregator) and gevent
(IVR, which is not monkey-patched) without touching either event loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from shared.settings import split_host_port

# Returns (ready, details); details are shown on /readyz, e.g. {"clickhouse": "down"}.
ReadyCheck = Callable[[], tuple[bool, dict[str, str]]]


def start_health_server(
    listen: str, ready: ReadyCheck, registry: CollectorRegistry = REGISTRY
) -> ThreadingHTTPServer:
    host, port = split_host_port(listen)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: probes are frequent
            return

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b'{"status":"ok"}', "application/json")
            elif path == "/readyz":
                ok, details = ready()
                body = json.dumps({"status": "ready" if ok else "degraded", **details}).encode()
                self._send(200 if ok else 503, body, "application/json")
            elif path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b'{"status":"not found"}', "application/json")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
