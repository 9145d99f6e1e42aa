"""The IVR process: gevent hub (event-socket server, one greenlet per survey) plus one OS thread
running asyncio for nats-py (KV watch + publisher), plus the health/metrics HTTP thread.

Shutdown (SIGTERM/SIGINT): stop accepting, let running surveys finish within
``CT_IVR_GRACE_S``, flush the publish buffer (bounded), close NATS, exit.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import time
from typing import Any

import gevent

from shared.health_http import start_health_server
from shared.settings import Settings, split_host_port

from .config_index import ConfigIndex, ConfigWatcher
from .esl_session import SurveyServer, SurveySession
from .loop_thread import LoopThread
from .metrics import IvrMetrics
from .nats_link import NatsLink
from .plan import PlanCache
from .prompts import PromptResolver
from .publisher import EventPublisher
from .survey import IvrContext, Survey

log = logging.getLogger(__name__)

FLUSH_MIN_S = 10.0
GC_THRESHOLDS = (5_000, 20, 100)
SWITCH_INTERVAL_S = 0.001  # the buffer always gets at least this long to drain at shutdown


class IvrService:
    def __init__(self, settings: Settings, metrics: IvrMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or IvrMetrics()
        self.index = ConfigIndex(self.metrics)
        self.loop = LoopThread()
        self.watcher = ConfigWatcher(self.index)
        self.link = NatsLink(settings.nats_servers, self.metrics, self.watcher.restart)
        self.publisher = EventPublisher(
            self.loop, self.link, self.metrics, settings.ivr_buffer_size
        )
        prompts = PromptResolver(settings.api_public_url, settings.api_signing_key)
        self.context = IvrContext(self.index, PlanCache(prompts), self.publisher, self.metrics)
        host, port = split_host_port(settings.ivr_listen)
        self.server = SurveyServer(
            host, port, self._app, settings.ivr_max_connections, self.metrics
        )
        self._stopping = False
        self._health: Any = None

    def _app(self, session: SurveySession) -> Survey:
        return Survey(session, self.context)

    def ready(self) -> tuple[bool, dict[str, str]]:
        details = {
            "nats": "up" if self.link.connected else "down",
            "config": "loaded" if self.index.ready else "loading",
            "listening": "yes" if self.server.accepting else "no",
            "buffer_depth": str(self.publisher.depth),
        }
        # NATS away is not "not ready": surveys run from the last configuration and buffer.
        return self.index.ready and self.server.accepting and not self._stopping, details

    def start(self) -> int:
        """Bind, start the NATS thread and health server; returns the event-socket port."""
        port = self.server.bind()
        self.loop.start()
        self.loop.submit(self.publisher.start()).result(5)
        self.loop.submit(self.link.start()).result(5)
        self._health = start_health_server(
            self.settings.ivr_metrics_listen, self.ready, self.metrics.registry
        )
        return port

    def serve(self) -> None:
        """Block in the accept loop until :meth:`request_stop`; then drain and flush."""
        accept = gevent.spawn(self.server.listen)
        accept.join()
        self._drain()

    def request_stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info(
            "stopping: no new calls, waiting for running surveys",
            extra={"active": self.server.connection_count, "grace_s": self.settings.ivr_grace_s},
        )
        self.server.stop()

    def _drain(self) -> None:
        started = time.monotonic()
        cut = self.server.drain(self.settings.ivr_grace_s)
        left = max(FLUSH_MIN_S, self.settings.ivr_grace_s - (time.monotonic() - started))
        flushed = self.publisher.wait_empty(left, sleep=gevent.sleep)
        if not flushed:
            log.error(
                "publish buffer not empty at exit; events lost",
                extra={"events": self.publisher.depth},
            )
        log.info("IVR stopped", extra={"surveys_cut": cut, "flushed": flushed})
        self.close()

    def close(self) -> None:
        try:
            self.loop.submit(self.watcher.stop()).result(3)
            self.loop.submit(self.publisher.stop()).result(3)
            self.loop.submit(self.link.close()).result(5)
        except Exception as exc:
            log.warning("NATS shutdown: %r", exc)
        self.loop.stop()
        if self._health is not None:
            self._health.shutdown()


def tune_runtime() -> None:
    """Latency knobs for one process serving ~1,000 calls from one hub.

    - Everything alive after start-up (modules, pydantic schemas, ...) is moved out of the
      garbage collector's view (``gc.freeze``), and young generations are collected less often,
      so full passes over a large heap (tens of ms with the hub stopped) become rare.
    - The NATS thread gives the GIL back to the hub after 1 ms instead of 5 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def main(settings: Settings) -> int:
    try:
        service = IvrService(settings)
        port = service.start()
    except (ValueError, OSError) as exc:  # bad listen address, port in use, ...
        log.error("IVR cannot start: %s", exc)
        return 2
    tune_runtime()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, service.request_stop)
    log.info(
        "IVR started",
        extra={
            "listen": f"{service.server.bind_address}:{port}",
            "metrics": settings.ivr_metrics_listen,
        },
    )
    service.serve()
    return 0
