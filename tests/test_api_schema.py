"""schemathesis against /openapi.json over real HTTP (uvicorn, real NATS and ClickHouse): with a
valid key on every route, no response is a 5xx and every response matches its documented status,
content type, headers and schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app

from api_support import SUCCESS_MAP, ServerThread, settings_for, success_profile

AUTH = {"Authorization": "Bearer acme-key"}
EXAMPLES = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(nats_url: str, clickhouse_url: str) -> Iterator[schemathesis.BaseSchema]:
    app = create_app(settings_for(nats_url, clickhouse_url))
    with ServerThread(app) as server:
        import httpx

        # Some objects to find, so that not every generated call ends in a 404.
        with httpx.Client(base_url=server.url, headers=AUTH) as client:
            client.post("/v1/code-maps", json=SUCCESS_MAP).raise_for_status()
            pid = client.post("/v1/profiles", json=success_profile()).json()["id"]
            client.post(
                "/v1/pools", json={"name": "p", "numbers": ["+4930123456"], "profile_id": pid}
            )
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def _run(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases on every run
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=30)

    run()


def test_api_conforms_to_its_schema(api_schema: schemathesis.BaseSchema) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 30
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, mode)
            except Unsatisfiable:
                pass  # no invalid input exists for it (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure
                failures.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"
                )
    assert not failures, "\n\n".join(failures)
