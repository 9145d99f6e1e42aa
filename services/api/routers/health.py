"""``/healthz`` (the process runs), ``/readyz`` (NATS and ClickHouse answer), ``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.dependencies import state
from services.api.models import Health, Readiness

router = APIRouter(tags=["operations"])

READY_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "NATS or ClickHouse does not answer"}},
)
async def readyz(request: Request) -> JSONResponse:
    st = state(request)
    nats_up = st.stores is not None and st.stores.nc.is_connected
    try:
        await asyncio.wait_for(
            st.clickhouse.run(lambda ch: ch.execute("SELECT 1")), READY_TIMEOUT_S
        )
        ch_up = True
    except Exception:  # any failure means "not ready"; the details are in the server log
        ch_up = False
    body = Readiness(
        status="ready" if nats_up and ch_up else "degraded",
        nats="up" if nats_up else "down",
        clickhouse="up" if ch_up else "down",
    )
    return JSONResponse(body.model_dump(), status_code=200 if nats_up and ch_up else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
