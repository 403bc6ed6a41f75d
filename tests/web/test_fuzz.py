"""Fuzz the JSON API from its own OpenAPI document (bounded): no 5xx, no stack trace, errors always
structured, whatever the input.  Runs as the read-only user, so random input changes nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from web.support import RunningUi  # noqa: E402

pytestmark = pytest.mark.cluster
EXAMPLES = 4
BUDGET = 60.0  # seconds for the whole fuzz run


def test_api_never_fails_badly(ui_server: RunningUi, viewer_token: str) -> None:
    schema = schemathesis.openapi.from_url(f"{ui_server.url}/api/openapi.json")
    headers = {"Authorization": f"Bearer {viewer_token}"}
    deadline = time.monotonic() + BUDGET
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if time.monotonic() > deadline:
            break

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers=headers, timeout=30)
            case.validate_response(response, checks=(not_a_server_error,))
            assert "Traceback" not in response.text
            if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                assert set(response.json()["error"]) >= {"message", "kind"}, response.text

        check()
        tried += 1
    assert tried >= 15
