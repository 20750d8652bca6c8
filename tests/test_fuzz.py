"""The API fuzzed by schemathesis over real HTTP, from its own OpenAPI document: a few
generated requests per operation (MAILRELEASE_FUZZ_EXAMPLES, 10 by default, the same ones
each run), failing on any 5xx. Set MAILRELEASE_FUZZ_RANDOM=1 to look further."""
from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

EXAMPLES = int(os.environ.get("MAILRELEASE_FUZZ_EXAMPLES", "10"))


def test_no_operation_answers_a_server_error_to_generated_input(live_no_worker):
    live = live_no_worker
    api = live.user()
    token = api.headers["Authorization"]
    api.post(f"{live.url}/api/v1/templates", json={"name": "t", "subject": "S", "html": "h"})
    schema = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  derandomize=not os.environ.get("MAILRELEASE_FUZZ_RANDOM"),
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call(base_url=f"{live.url}/api/v1",
                                 headers={"Authorization": token}, timeout=30)
            if response.status_code >= 500:
                failures.append((operation.label, response.status_code, case.body,
                                 case.query, case.path_parameters, response.text[:300]))
        run()
    assert operations > 40
    assert failures == []
