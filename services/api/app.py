"""The FastAPI application factory.

``create_app(settings)`` connects to what ``settings`` name; tests pass ``clickhouse_factory`` to
run the same app on chDB. NATS is connected in the lifespan, on the server's own event loop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import nats
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from services.api.auth import KeyRing
from services.api.ch_pool import ClickHousePool
from services.api.dependencies import ApiState
from services.api.metrics import ApiMetrics, MetricsMiddleware
from services.api.models import TextPromptIn
from services.api.problems import PROBLEM_JSON, install_handlers
from services.api.routers import (
    code_maps,
    health,
    numbers,
    pools,
    profiles,
    prompts,
    reports,
    templates,
)
from services.api.stores import open_stores
from shared.clickhouse.client import ClickHouse, ServerClickHouse
from shared.settings import Settings

log = logging.getLogger("ct.api")

DESCRIPTION = """Conversion Tracking: post-call DTMF surveys on tracking numbers.

Authenticate with `Authorization: Bearer <API key>`; every object belongs to the key's tenant.
Objects carry `version` (also the `ETag`); send it back as `If-Match` on PUT/DELETE to avoid
overwriting someone else's change (412 when stale). Errors are RFC 9457 problem+json with the
failing `field`. See docs/api.md.
"""


def create_app(
    settings: Settings,
    clickhouse_factory: Callable[[], ClickHouse] | None = None,
    clickhouse_pool_size: int = 8,
) -> FastAPI:
    keys = KeyRing(settings.api_keys, settings.api_keys_file)
    if keys.empty:
        log.warning("no API keys configured (CT_API_KEYS / CT_API_KEYS_FILE): every call is 401")
    pool = ClickHousePool(
        clickhouse_factory or (lambda: ServerClickHouse(settings.clickhouse_url)),
        size=clickhouse_pool_size,
    )
    api_state = ApiState(settings=settings, keys=keys, clickhouse=pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await nats.connect(
            servers=settings.nats_servers,
            name="convtrack-api",
            connect_timeout=5,
            max_reconnect_attempts=-1,  # keep trying: readiness reports the outage meanwhile
            reconnect_time_wait=1,
        )
        try:
            api_state.stores = await open_stores(nc)
            yield
        finally:
            api_state.stores = None
            await nc.close()
            pool.close()

    app = FastAPI(
        title="Conversion Tracking API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.api = api_state
    app.state.metrics = ApiMetrics(CollectorRegistry())
    install_handlers(app)
    for module in (code_maps, templates, profiles, pools, numbers, prompts, reports, health):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with errors declared as problem+json and the JSON prompt body added."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path in schema["paths"].values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                json_body = content.get("application/json", {})
                if code[0] in "45" and json_body.get("schema", {}).get("$ref", "").endswith(
                    "/Problem"
                ):
                    response["content"] = {PROBLEM_JSON: json_body}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    text_schema = TypeAdapter(TextPromptIn).json_schema(ref_template="#/components/schemas/{model}")
    components.setdefault("TextPromptIn", text_schema)
    app.openapi_schema = schema
    return schema
