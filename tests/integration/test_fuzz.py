"""The API fuzzed by schemathesis over real HTTP, from its own OpenAPI document: a few
generated requests per operation (MAILRELEASE_FUZZ_EXAMPLES, 10 by default, the same ones
each run), failing on any 5xx, any status the document does not list for the operation,
and any answer that does not match its documented schema or content type. Set
MAILRELEASE_FUZZ_RANDOM=1 to look further."""
from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [status_code_conformance, response_schema_conformance, content_type_conformance]

EXAMPLES = int(os.environ.get("MAILRELEASE_FUZZ_EXAMPLES", "10"))


def test_no_operation_answers_a_server_error_to_generated_input(live_no_worker, monkeypatch):
    live = live_no_worker
    # The app's own check of its answers is off here: schemathesis checks them against
    # the published document, independently of the models that made it.
    monkeypatch.setattr(live.db, "self_check", False)
    api = live.user()
    token = api.headers["Authorization"]
    # Something of everything, so that lists and reads answer real rows.
    base = f"{live.url}/api/v1"
    template = api.post(f"{base}/templates", json={"name": "t", "subject": "S",
                                                   "html": "h"}).json()["id"]
    api.post(f"{base}/contacts", json={"email": "c@example.org", "timezone": "Europe/Paris"})
    for path, body in (("/messages", {"to": "c@example.org", "template_id": template,
                                      "delay_seconds": 86400}),
                       ("/rules", {"event": "signup", "template_id": template}),
                       ("/schedules", {"cron": "0 9 * * *", "template_id": template,
                                       "to": "c@example.org"}),
                       ("/campaigns", {"template_id": template, "delay_seconds": 86400})):
        assert api.post(base + path, json=body).status_code == 201, path
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
        # Valid requests and invalid ones (schemathesis's negative mode: values the
        # document refuses), both against the same checks.
        @given(case=operation.as_strategy(GenerationMode.POSITIVE)
               | operation.as_strategy(GenerationMode.NEGATIVE))
        def run(case):
            response = case.call(base_url=f"{live.url}/api/v1",
                                 headers={"Authorization": token}, timeout=30)
            problem = None
            if response.status_code >= 500:
                problem = "server error"
            else:
                try:
                    case.validate_response(response, checks=CHECKS)
                except FailureGroup as group:  # a BaseExceptionGroup: one per failed check
                    problem = "; ".join(str(f.title) for f in group.exceptions)
            if problem:
                # run() is called within this iteration: the loop variable is the current one.
                failures.append((operation.label, problem,  # noqa: B023
                                 response.status_code, case.body,
                                 case.query, case.path_parameters, response.text[:300]))
        run()
    assert operations > 50
    assert failures == [], "\n".join(map(str, failures[:20]))
