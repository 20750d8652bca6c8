"""The OpenAPI 3.1 document served at /api/v1/openapi.json, generated from the routes'
declarations (app/api/endpoint.py): request bodies and queries from the typed commands,
answers from app/api/responses.py, every error status each route can give. Nothing here is
written by hand but the words around it."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from app.api import responses
from app.api.endpoint import OPERATIONS, Operation

ERRORS = {400: "Malformed: not JSON, or nested too deep",
          401: "No or bad credentials (or signature)",
          403: "Your role in the team does not allow it",
          404: "Not found (also what belongs to another team)",
          409: "Not allowed in its current state, or a concurrent change: send it again",
          413: "Body too large", 422: "Invalid: the message names the field",
          429: "Too many failed attempts from this client: wait (Retry-After)",
          502: "Gmail did not answer as expected", 503: "The database is not answering "
          "(Retry-After)"}
REF = "#/components/schemas/{model}"


def _parameters(op: Operation, schemas: dict) -> list[dict]:
    out = [{"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "maxLength": 64}} for name in op.path_params]
    if op.query is not None:
        schema = schemas[("query", op.name)]
        for name, prop in schema.get("properties", {}).items():
            out.append({"name": name, "in": "query", "required": name in schema.get(
                "required", ()), "schema": prop,
                **({"description": prop["description"]} if "description" in prop else {})})
    return out


def _request_body(op: Operation, schemas: dict) -> dict | None:
    if op.body_kind == "csv":
        return {"required": True, "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                               "properties": {"file": {
                                                   "type": "string", "format": "binary"}}}}}}
    if op.body is None:
        return None
    return {"required": True,
            "content": {"application/json": {"schema": schemas[("body", op.name)]}}}


def _responses(op: Operation, schemas: dict) -> dict:
    out: dict[str, dict] = {}
    for status, model in op.answers.items():
        entry: dict[str, Any] = {"description": "OK" if status < 300 else "Done"}
        if model is not None:
            entry["content"] = {"application/json": {
                "schema": schemas[("answer", f"{op.name}:{status}")]}}
            if op.body_kind == "csv":
                entry["content"]["application/x-ndjson"] = {"schema": {
                    "type": "string", "description": "with Accept: application/x-ndjson: "
                    "progress lines {\"rows\": n}, then the report"}}
        out[str(status)] = entry
    error = {"$ref": REF.format(model="Error")}
    for status in op.errors:
        out[str(status)] = {"description": ERRORS[status],
                            "content": {"application/json": {"schema": error}}}
    return out


def _security(op: Operation) -> list[dict]:
    if op.auth == "none":
        return []
    if op.auth == "token_or_signature":
        return [{"bearer": []}, {"signature": []}]
    return [{"bearer": []}]


@lru_cache(maxsize=1)
def document() -> dict:
    """The whole document (built once: the declarations do not change while running)."""
    inputs = [(("answer", "error"), "serialization", TypeAdapter(responses.Error))]
    for op in OPERATIONS:
        if op.body is not None and op.body_kind != "csv":
            inputs.append((("body", op.name), "validation", TypeAdapter(op.body)))
        if op.query is not None:
            inputs.append((("query", op.name), "validation", TypeAdapter(op.query)))
        for status, model in op.answers.items():
            if model is not None:
                inputs.append((("answer", f"{op.name}:{status}"), "serialization",
                               TypeAdapter(model)))
    found, defs = TypeAdapter.json_schemas(inputs, ref_template=REF)
    schemas = {key: schema for (key, _mode), schema in found.items()}
    for key, schema in list(schemas.items()):
        if key[0] == "query" and "$ref" in schema:  # a query's model, inlined
            schemas[key] = defs["$defs"].pop(schema["$ref"].rsplit("/", 1)[1])
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        entry = {"operationId": op.name, "summary": op.summary,
                 "parameters": _parameters(op, schemas),
                 "responses": _responses(op, schemas), "security": _security(op)}
        if op.description:
            entry["description"] = op.description
        if op.role != "viewer":
            entry["description"] = (entry.get("description", "") +
                                    f" Needs the {op.role} role or higher.").strip()
        body = _request_body(op, schemas)
        if body is not None:
            entry["requestBody"] = body
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "mailrelease", "version": "2",
                 "description": "Release personalized email through your own Gmail account. "
                                "Generated from the code's request and answer models."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API token (`mailrelease token create`)"},
                "signature": {"type": "apiKey", "in": "header",
                              "name": "X-Mailrelease-Signature",
                              "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                                             "\"<t>.<raw body>\"> with the webhook secret"}},
            "schemas": defs.get("$defs", {}),
        },
    }
