"""Property-based API tests generated from the service's own OpenAPI schema (schemathesis + hypothesis).

Every operation is called with generated parameters and bodies; each answer must be no 5xx, a status
the schema documents, with the documented content type, headers and body schema. The example count
is kept small so the whole module stays well under a minute. (Hypothesis drives schemathesis's
strategies directly: its lazy pytest fixture loader does not run under pytest 9.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.service import ServiceProcess

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    server = ServiceProcess(models_dir, tmp_path_factory.mktemp("schema") / "service.log").start()
    yield server
    server.stop()


def test_every_operation_answers_as_documented(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {
        ("POST", "/segment"), ("GET", "/v1/models"), ("GET", "/v1/models/{name}"), ("GET", "/healthz"),
        ("GET", "/readyz"), ("GET", "/metrics")}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def answers_as_documented(case):
            case.call_and_validate(base_url=server.url, checks=CHECKS)

        answers_as_documented()
