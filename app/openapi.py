"""The OpenAPI 3.1 document served at /api/v1/openapi.json."""
from __future__ import annotations

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict:
    text = {400: "Malformed request", 401: "No or bad credentials", 404: "Not found (or not "
            "yours)", 409: "Not allowed in the message's state", 413: "Body too large",
            422: "Invalid: the message names the field"}
    return {str(c): {"description": text[c],
                     "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _message_response(code: int, description: str) -> dict:
    return {str(code): {"description": description, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}}}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "mailrelease", "version": "1",
             "description": "Release personalized email through your own Gmail account."},
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/messages": {
            "post": {"summary": "Queue a message", "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/NewMessage"}}}},
                "responses": {**_message_response(201, "Queued (or held, with the reason)"),
                              **_errors(400, 401, 413, 422)}},
            "get": {"summary": "List messages, newest first", "parameters": [
                {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/Status"}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                "responses": {"200": {"description": "A page", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "items": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/Message"}},
                        "next_cursor": {"type": ["string", "null"]}}}}}},
                    **_errors(401, 422)}},
        },
        "/messages/{id}": {
            "get": {"summary": "One message and its timeline", "parameters": [_ID],
                    "responses": {**_message_response(200, "The message"), **_errors(401, 404)}},
            "patch": {"summary": "Reschedule or edit while not sending", "parameters": [_ID],
                      "requestBody": {"required": True, "content": {"application/json": {
                          "schema": {"$ref": "#/components/schemas/MessageChange"}}}},
                      "responses": {**_message_response(200, "Changed"),
                                    **_errors(400, 401, 404, 409, 422)}},
        },
        "/messages/{id}/cancel": {"post": {
            "summary": "Cancel unless sending has begun", "parameters": [_ID],
            "responses": {**_message_response(200, "Cancelled"), **_errors(401, 404, 409)}}},
        "/messages/{id}/send-now": {"post": {
            "summary": "Release now", "parameters": [_ID],
            "responses": {**_message_response(200, "Due now"), **_errors(401, 404, 409, 422)}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Status": {"type": "string", "enum": ["draft", "scheduled", "held", "sending",
                                                  "retry_wait", "sent", "failed", "cancelled"]},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "field": {"type": "string"}}}}},
            "NewMessage": {"type": "object", "required": ["to", "subject", "html"], "properties": {
                "to": {"type": "string", "description": "address or \"Name <address>\""},
                "from": {"type": "string", "description": "a connected account's address"},
                "subject": {"type": "string", "description": "Jinja2"},
                "html": {"type": "string", "description": "Jinja2, autoescaped"},
                "text": {"type": "string", "description": "Jinja2; made from html if absent"},
                "data": {"type": "object"},
                "send_at": {"type": "string", "format": "date-time",
                            "description": "ISO 8601 with an offset; past = now"},
                "delay_seconds": {"type": "number", "minimum": 0},
                "thread_id": {"type": "string"}, "in_reply_to": {"type": "string"}}},
            "MessageChange": {"type": "object", "properties": {
                "to": {"type": "string"}, "subject": {"type": "string"},
                "html": {"type": "string"}, "text": {"type": "string"},
                "data": {"type": "object"},
                "send_at": {"type": "string", "format": "date-time"},
                "delay_seconds": {"type": "number", "minimum": 0}}},
            "Event": {"type": "object", "properties": {
                "type": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
                "detail": {"type": ["object", "null"]}}},
            "Message": {"type": "object", "properties": {
                "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                "to": {"type": "string"}, "from": {"type": "string"},
                "subject": {"type": "string"},
                "release_at": {"type": ["string", "null"], "format": "date-time"},
                "sent_at": {"type": ["string", "null"], "format": "date-time"},
                "gmail_message_id": {"type": ["string", "null"]},
                "thread_id": {"type": ["string", "null"]},
                "message_id_header": {"type": "string"},
                "attempts": {"type": "integer"},
                "error": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}},
        },
    },
}
