"""The OpenAPI 3.1 document served at /api/v1/openapi.json."""
from __future__ import annotations

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict:
    text = {400: "Malformed request", 401: "No or bad credentials",
            403: "Your role in the team does not allow it", 404: "Not found (or not "
            "yours)", 409: "Not allowed in the message's state", 413: "Body too large",
            422: "Invalid: the message names the field"}
    return {str(c): {"description": text[c],
                     "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _message_response(code: int, description: str) -> dict:
    return {str(code): {"description": description, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}}}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema_name: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def _ok(code: int, description: str, schema_name: str | None = None) -> dict:
    body = {"description": description}
    if schema_name:
        body["content"] = _json(schema_name)
    return {str(code): body}


def _page(schema_name: str) -> dict:
    return {"200": {"description": "A page", "content": {"application/json": {"schema": {
        "type": "object", "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{schema_name}"}},
            "next_cursor": {"type": ["string", "null"]}}}}}}}


_CONTENT_PATHS = {
    "/templates": {
        "post": {"summary": "Save a template, or load a starter with {\"starter\": key}",
                 "requestBody": {"required": True, "content": _json("NewTemplate")},
                 "responses": {**_ok(201, "Saved", "Template"),
                               **_errors(400, 401, 404, 409, 422)}},
        "get": {"summary": "The team's templates", "responses": {**_page("Template"),
                                                                 **_errors(401)}}},
    "/templates/{id}": {
        "get": {"summary": "One template", "parameters": [_ID],
                "responses": {**_ok(200, "The template", "Template"), **_errors(401, 404)}},
        "put": {"summary": "Change a template (queued messages keep their copy)",
                "parameters": [_ID], "requestBody": {"required": True,
                                                     "content": _json("NewTemplate")},
                "responses": {**_ok(200, "Changed", "Template"),
                              **_errors(400, 401, 404, 409, 422)}},
        "delete": {"summary": "Delete a template", "parameters": [_ID],
                   "responses": {**_ok(204, "Deleted"), **_errors(401, 404)}}},
    "/templates/{id}/preview": {"post": {
        "summary": "Every part rendered for a contact (`to`) and/or `data`",
        "parameters": [_ID], "requestBody": {"content": _json("PreviewRequest")},
        "responses": {**_ok(200, "The rendered parts", "Preview"),
                      **_errors(400, 401, 404, 422)}}},
    "/templates/preview": {"post": {
        "summary": "Preview unsaved content (template fields plus `to`/`data`)",
        "requestBody": {"content": _json("NewTemplate")},
        "responses": {**_ok(200, "The rendered parts", "Preview"), **_errors(400, 401, 422)}}},
    "/templates/from-draft": {"post": {
        "summary": "Make a template of a Gmail draft: draft_id, optional name, account",
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "required": ["draft_id"], "properties": {
                "draft_id": {"type": "string"}, "name": {"type": "string"},
                "account": {"type": "string"}}}}}},
        "responses": {**_ok(201, "Saved", "Template"), **_errors(401, 404, 409, 422)}}},
    "/starter-templates": {"get": {"summary": "The starter templates that ship with "
                                              "mailrelease", "responses": _ok(200, "List")}},
    "/gmail/drafts": {"get": {
        "summary": "The sending account's Gmail drafts and their placeholders",
        "parameters": [{"name": "account", "in": "query", "schema": {"type": "string"}}],
        "responses": {**_ok(200, "List"), **_errors(401, 422)}}},
    "/contacts": {
        "post": {"summary": "Add or update one contact or a list (all or nothing)",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"oneOf": [{"$ref": "#/components/schemas/NewContact"},
                                          {"type": "array", "items": {
                                              "$ref": "#/components/schemas/NewContact"}}]}}}},
                 "responses": {**_ok(201, "Stored", "ImportReport"),
                               **_errors(400, 401, 422)}},
        "get": {"summary": "The team's contacts, oldest first", "parameters": [
            {"name": "email", "in": "query", "schema": {"type": "string"}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            {"name": "limit", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            "responses": {**_page("Contact"), **_errors(401, 422)}}},
    "/contacts/{id}": {"get": {"summary": "One contact", "parameters": [_ID],
                               "responses": {**_ok(200, "The contact", "Contact"),
                                             **_errors(401, 404)}},
                       "delete": {"summary": "Delete a contact; its messages not yet "
                                             "sending are cancelled", "parameters": [_ID],
                                  "responses": {**_ok(204, "Deleted"),
                                                **_errors(401, 403, 404)}}},
    "/contacts/import": {"post": {
        "summary": "Import a CSV (body as text/csv, or multipart field `file`); with Accept: "
                   "application/x-ndjson, progress lines then the report",
        "requestBody": {"required": True, "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}}}},
        "responses": {**_ok(200, "The report", "ImportReport"), **_errors(401, 413, 422)}}},
}

_TEAM = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                         "tracking": {"type": "boolean"},
                                         "role": {"type": "string", "readOnly": True}}}
_ROLE = {"type": "string", "enum": ["owner", "member", "viewer"]}
_OBJ = {"application/json": {"schema": {"type": "object"}}}
_CONTENT_PATHS["/team"] = {
    "get": {"summary": "The caller's team, its settings and the caller's role",
            "responses": {"200": {"description": "The team", "content": {
                "application/json": {"schema": _TEAM}}}, **_errors(401)}},
    "patch": {"summary": "Owners change team settings (name; tracking: open pixels and click "
                         "redirects)",
              "requestBody": {"content": {"application/json": {"schema": _TEAM}}},
              "responses": {"200": {"description": "Changed"}, **_errors(400, 401, 403, 422)}},
}
_CONTENT_PATHS["/team/members"] = {"get": {
    "summary": "Members and their roles", "responses": {**_ok(200, "List"), **_errors(401)}}}
_CONTENT_PATHS["/team/members/{id}"] = {
    "patch": {"summary": "Owners change a member's role (a team keeps an owner: 409)",
              "parameters": [_ID], "requestBody": {"content": {"application/json": {
                  "schema": {"type": "object", "properties": {"role": _ROLE}}}}},
              "responses": {**_ok(200, "Changed"), **_errors(401, 403, 404, 409, 422)}},
    "delete": {"summary": "Owners remove a member; their tokens for the team stop working",
               "parameters": [_ID],
               "responses": {**_ok(204, "Removed"), **_errors(401, 403, 404, 409)}}}
_CONTENT_PATHS["/team/invitations"] = {
    "get": {"summary": "Open invitations", "responses": {**_ok(200, "List"), **_errors(401)}},
    "post": {"summary": "Owners invite a Google address: whoever signs in with it joins",
             "requestBody": {"content": {"application/json": {"schema": {
                 "type": "object", "required": ["email"], "properties": {
                     "email": {"type": "string"}, "role": _ROLE,
                     "send_email": {"type": "boolean", "description": "mail the invitation "
                                    "from the owner's Gmail (default true)"}}}}}},
             "responses": {**_ok(201, "Invited"), **_errors(400, 401, 403, 409, 422)}}}
_CONTENT_PATHS["/team/invitations/{id}"] = {"delete": {
    "summary": "Owners withdraw an open invitation", "parameters": [_ID],
    "responses": {**_ok(204, "Withdrawn"), **_errors(401, 403, 404, 409)}}}
_CONTENT_PATHS["/accounts"] = {"get": {
    "summary": "Gmail accounts the caller sends from in this team: state (healthy, needs "
               "reconnecting, daily limit reached), sent in 24 h vs the cap, sendAs aliases",
    "responses": {**_ok(200, "List"), **_errors(401)}}}
_CONTENT_PATHS["/accounts/{id}/share"] = {
    "put": {"summary": "Owners share one of their own accounts with the team",
            "parameters": [_ID], "responses": {**_ok(200, "Shared"),
                                               **_errors(401, 403, 404)}},
    "delete": {"summary": "Stop sharing it", "parameters": [_ID],
               "responses": {**_ok(200, "Not shared"), **_errors(401, 403, 404)}}}
_CONTENT_PATHS["/audit"] = {"get": {
    "summary": "Who changed what in the team, newest first",
    "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string"}},
                   {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
    "responses": {**_ok(200, "A page"), **_errors(401, 422)}}}
_CONTENT_PATHS["/stats"] = {"get": {
    "summary": "Sent, opened, clicked, replied, bounced, unsubscribed per day, per campaign "
               "and A/B variant",
    "parameters": [{"name": "days", "in": "query", "schema": {"type": "integer"}},
                   {"name": "tz", "in": "query", "schema": {"type": "string"}},
                   {"name": "campaign_id", "in": "query", "schema": {"type": "integer"}}],
    "responses": {**_ok(200, "Statistics"), **_errors(401, 422)}}}
_REPLY = {"application/json": {"schema": {"type": "object", "properties": {
    "template_id": {"type": "integer", "description": "a saved reply (kind reply)"},
    "html": {"type": "string"}, "text": {"type": "string"},
    "account_id": {"type": "integer", "description": "whose mailbox the thread is in"},
    "from": {"type": "string", "description": "that mailbox's address or a sendAs alias"},
    "data": {"type": "object"}, "send_at": {"type": "string", "format": "date-time"},
    "delay_seconds": {"type": "number"}}}}}
_CONTENT_PATHS["/threads"] = {"get": {
    "summary": "Recent Gmail threads of one of the caller's mailboxes (subject, customer, "
               "last Message-ID)",
    "parameters": [{"name": "account_id", "in": "query", "schema": {"type": "integer"}},
                   {"name": "q", "in": "query", "schema": {"type": "string"},
                    "description": "Gmail search; in:inbox by default"},
                   {"name": "limit", "in": "query", "schema": {"type": "integer",
                                                              "maximum": 50}}],
    "responses": {**_ok(200, "List"), **_errors(401, 404, 422)}}}
_CONTENT_PATHS["/threads/{id}/reply"] = {"post": {
    "summary": "Queue a reply in the thread (threadId, In-Reply-To, References, Re: subject)",
    "parameters": [_ID], "requestBody": {"required": True, "content": _REPLY},
    "responses": {**_message_response(201, "Queued"), **_errors(400, 401, 404, 422)}}}
_CONTENT_PATHS["/threads/{id}/reply/preview"] = {"post": {
    "summary": "The reply rendered for the thread's customer; nothing queued",
    "parameters": [_ID], "requestBody": {"required": True, "content": _REPLY},
    "responses": {**_ok(200, "The rendered parts", "Preview"), **_errors(400, 401, 404, 422)}}}

_RULE = {"type": "object", "properties": {
    "name": {"type": "string"}, "event": {"type": "string"},
    "conditions": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string", "description": "data.<key> or contact.<attribute>"},
        "op": {"type": "string", "enum": ["equals", "not_equals", "greater", "less",
                                          "contains", "exists"]},
        "value": {}}}},
    "template_id": {"type": "integer"}, "delay_seconds": {"type": "number", "minimum": 0},
    "cancel_on": {"type": "array", "items": {"type": "string"}},
    "frequency_cap": {"type": ["object", "null"], "properties": {
        "max": {"type": "integer"}, "seconds": {"type": "number"}}},
    "local_time": {"type": "object", "properties": {"time": {"type": "string"}}},
    "best_hour": {"type": "boolean"},
    "window": {"type": "object", "properties": {
        "days": {"type": "array", "items": {"type": "string"}},
        "start": {"type": "string"}, "end": {"type": "string"}}},
    "data": {"type": "object"},
    "seed": {"type": "string", "description": "load a ready-made set instead"},
    "active": {"type": "boolean"}}}
_CONTENT_PATHS.update({
    "/events": {"post": {
        "summary": "An event: queues what matching rules say, cancels what it cancels. Bearer "
                   "token, or X-Mailrelease-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "
                   "\"<t>.<raw body>\"> (optional ?team=<id>). A repeated id answers the same.",
        "security": [{"bearer": []}, {}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "name", "email"], "properties": {
                "id": {"type": "string"}, "name": {"type": "string"},
                "email": {"type": "string"},
                "occurred_at": {"type": "string", "format": "date-time"},
                "data": {"type": "object"}}}}}},
        "responses": {"202": {"description": "{event_id, messages, cancelled}"},
                      **_errors(400, 401, 413, 422)}}},
    "/webhook-secret": {"get": {"summary": "The team's webhook signing secret",
                                "responses": {**_ok(200, "The secret"),
                                              **_errors(401, 403)}}},
    "/webhook-secret/rotate": {"post": {
        "summary": "A new secret; the previous one is accepted for 24 h",
        "responses": {**_ok(200, "The new secret"), **_errors(401)}}},
    "/rules": {
        "post": {"summary": "Create a rule", "requestBody": {"required": True, "content": {
            "application/json": {"schema": _RULE}}},
            "responses": {**_ok(201, "Created"), **_errors(400, 401, 404, 422)}},
        "get": {"summary": "The team's rules", "responses": {**_ok(200, "List"),
                                                              **_errors(401)}}},
    "/rules/{id}": {
        "get": {"summary": "One rule", "parameters": [_ID],
                "responses": {**_ok(200, "The rule"), **_errors(401, 404)}},
        "delete": {"summary": "Delete a rule (what it queued stays)", "parameters": [_ID],
                   "responses": {**_ok(204, "Deleted"), **_errors(401, 404)}}},
})

_SCHEDULE = {"type": "object", "required": ["cron", "template_id", "to"], "properties": {
    "name": {"type": "string"}, "cron": {"type": "string", "description": "crontab"},
    "timezone": {"type": "string", "default": "UTC"}, "template_id": {"type": "integer"},
    "to": {"type": "string"}, "data": {"type": "object"},
    "catch_up": {"enum": ["latest", "all", "hold"], "default": "latest",
                 "description": "occurrences missed by more than the maximum lateness (no "
                                "worker ran): send the latest only, send each, or hold them"}}}
_CONTENT_PATHS.update({
    "/schedules": {
        "post": {"summary": "A recurring send (each occurrence its own message)",
                 "requestBody": {"required": True, "content": {
                     "application/json": {"schema": _SCHEDULE}}},
                 "responses": {**_ok(201, "Created"), **_errors(400, 401, 404, 422)}},
        "get": {"summary": "The team's schedules", "responses": {**_ok(200, "List"),
                                                                  **_errors(401)}}},
    "/schedules/{id}": {
        "get": {"summary": "One schedule", "parameters": [_ID],
                "responses": {**_ok(200, "The schedule"), **_errors(401, 404)}},
        "delete": {"summary": "Stop a schedule", "parameters": [_ID],
                   "responses": {**_ok(200, "Stopped"), **_errors(401, 404)}}},
})

_CAMPAIGN = {"type": "object", "properties": {
    "name": {"type": "string"}, "template_id": {"type": "integer"},
    "variants": {"type": "array", "items": {"type": "object", "properties": {
        "key": {"type": "string"}, "weight": {"type": "number"},
        "template_id": {"type": "integer"}, "subject": {"type": "string"},
        "html": {"type": "string"}}}},
    "audience": {"description": "\"all\", {\"contact_ids\": [...]} or {\"filter\": "
                                "[conditions on contact.*]}"},
    "ab": {"type": "object", "properties": {
        "test_fraction": {"type": "number"}, "metric": {"enum": ["open", "click", "reply"]},
        "decide_after_seconds": {"type": "number"}, "min_per_variant": {"type": "integer"}}},
    "send_at": {"type": "string"}, "delay_seconds": {"type": "number"},
    "local_time": {"type": "object"}, "window": {"type": "object"}, "data": {"type": "object"},
    "from": {"type": "string"}}}
_CONTENT_PATHS.update({
    "/campaigns": {
        "post": {"summary": "A mail merge to an audience, optionally A/B tested",
                 "requestBody": {"required": True, "content": {
                     "application/json": {"schema": _CAMPAIGN}}},
                 "responses": {**_ok(201, "Queued"), **_errors(400, 401, 404, 422)}},
        "get": {"summary": "The team's campaigns", "responses": {**_ok(200, "List"),
                                                                  **_errors(401)}}},
    "/campaigns/{id}": {"get": {"summary": "One campaign", "parameters": [_ID],
                                "responses": {**_ok(200, "The campaign"),
                                              **_errors(401, 404)}}},
    "/campaigns/{id}/stats": {"get": {
        "summary": "Per-variant counts and rates, and the A/B decision", "parameters": [_ID],
        "responses": {**_ok(200, "Stats"), **_errors(401, 404)}}},
})

_CONTENT_SCHEMAS = {
    "Source": {"type": "object", "required": ["name", "url"], "properties": {
        "name": {"type": "string"}, "url": {"type": "string", "description": "Jinja2; scheme "
                                                                            "and host literal"},
        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 300},
        "cache_seconds": {"type": "integer", "minimum": 0, "default": 0},
        "fallback": {"description": "any JSON value used when the fetch fails"}}},
    "NewTemplate": {"type": "object", "properties": {
        "starter": {"type": "string"}, "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["email", "reply"], "description": "reply: a saved "
                 "reply for support threads (subject defaults to the thread's)"},
        "subject": {"type": "string"}, "html": {"type": "string"},
        "text": {"type": ["string", "null"]}, "amp": {"type": ["string", "null"]},
        "sources": {"type": "array", "items": {"$ref": "#/components/schemas/Source"}},
        "transactional": {"type": "boolean"}, "tracking": {"type": "boolean"}}},
    "Template": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "subject": {"type": "string"},
        "html": {"type": "string"}, "text": {"type": ["string", "null"]},
        "amp": {"type": ["string", "null"]},
        "sources": {"type": "array", "items": {"$ref": "#/components/schemas/Source"}},
        "transactional": {"type": "boolean"}, "origin": {"type": ["string", "null"]},
        "kind": {"type": "string", "enum": ["email", "reply"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}}},
    "PreviewRequest": {"type": "object", "properties": {
        "to": {"type": "string"}, "data": {"type": "object"}}},
    "Preview": {"type": "object", "properties": {
        "subject": {"type": "string"}, "html": {"type": "string"}, "text": {"type": "string"},
        "amp": {"type": ["string", "null"]}, "data": {"type": "object"},
        "sources": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"},
            "outcome": {"type": "string", "enum": ["hit", "fetched", "fallback"]},
            "detail": {"type": ["string", "null"]}}}}}},
    "NewContact": {"type": "object", "required": ["email"], "properties": {
        "email": {"type": "string"}, "name": {"type": "string"},
        "timezone": {"type": "string", "description": "IANA, e.g. Europe/Paris"},
        "attributes": {"type": "object"},
        "subscription": {"type": "string", "enum": ["subscribed", "unsubscribed"]}}},
    "Contact": {"type": "object", "properties": {
        "id": {"type": "integer"}, "email": {"type": "string"},
        "name": {"type": ["string", "null"]}, "timezone": {"type": ["string", "null"]},
        "attributes": {"type": "object"}, "subscription": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}}},
    "ImportReport": {"type": "object", "properties": {
        "imported": {"type": "integer"}, "updated": {"type": "integer"},
        "rejected": {"type": "array", "items": {"type": "object", "properties": {
            "row": {"type": "integer"}, "error": {"type": "string"}}}}}},
}

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
                {"name": "account_id", "in": "query", "schema": {"type": "integer"}},
                {"name": "campaign_id", "in": "query", "schema": {"type": "integer"}},
                {"name": "rule_id", "in": "query", "schema": {"type": "integer"}},
                {"name": "q", "in": "query", "schema": {"type": "string"},
                 "description": "text in the recipient or the subject"},
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
        **_CONTENT_PATHS,
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
            **_CONTENT_SCHEMAS,
            "NewMessage": {"type": "object", "required": ["to"], "properties": {
                "to": {"type": "string", "description": "address or \"Name <address>\"; a "
                       "contact's fields are merged under data"},
                "template_id": {"type": "integer",
                                "description": "instead of subject/html/text/amp"},
                "amp": {"type": "string", "description": "AMP for Email, Jinja2"},
                "from": {"type": "string", "description": "an account's address you send "
                         "from in this team, or one of its Gmail sendAs aliases"},
                "subject": {"type": "string", "description": "Jinja2"},
                "html": {"type": "string", "description": "Jinja2, autoescaped"},
                "text": {"type": "string", "description": "Jinja2; made from html if absent"},
                "data": {"type": "object"},
                "send_at": {"type": "string", "format": "date-time",
                            "description": "ISO 8601 with an offset; past = now"},
                "delay_seconds": {"type": "number", "minimum": 0},
                "local_time": {"type": "object", "description": "{\"time\": \"09:00\", "
                               "\"date\": \"2026-11-24\"?} in the contact's zone"},
                "best_hour": {"type": "boolean"},
                "window": {"type": "object", "description": "{\"days\", \"start\", "
                           "\"end\"} in the contact's zone"},
                "transactional": {"type": "boolean"}, "tracking": {"type": "boolean"},
                "thread_id": {"type": "string"}, "in_reply_to": {"type": "string"},
                "references": {"type": "string", "description": "the thread's Message-IDs "
                               "(default: in_reply_to)"},
                "draft": {"type": "boolean", "default": False,
                          "description": "keep it a draft until send-now or a PATCH with a "
                                         "time (or draft: false)"}}},
            "MessageChange": {"type": "object", "properties": {
                "to": {"type": "string"}, "subject": {"type": "string"},
                "from": {"type": "string", "description": "another account (or alias) "
                         "you can send from in this team"},
                "html": {"type": "string"}, "text": {"type": "string"},
                "data": {"type": "object"},
                "send_at": {"type": "string", "format": "date-time"},
                "delay_seconds": {"type": "number", "minimum": 0},
                "draft": {"type": "boolean", "description": "false schedules a draft"}}},
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
                "hold_kind": {"type": ["string", "null"]},
                "lease_until": {"type": ["string", "null"], "format": "date-time"},
                "cancellable": {"type": "boolean", "description": "open, or left sending "
                                "by a worker that stopped"},
                "template_id": {"type": ["integer", "null"]},
                "contact_id": {"type": ["integer", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}},
        },
    },
}


# POSTs that create: the same Idempotency-Key and body answer the first answer again.
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                   "description": "the same key with the same request returns the first "
                                  "answer (with Idempotent-Replayed: true) for 24 h; with "
                                  "another request, 422"}
for _path in ("/messages", "/campaigns", "/contacts", "/contacts/import", "/templates"):
    _post = OPENAPI["paths"][_path]["post"]
    _post["parameters"] = [*_post.get("parameters", []), IDEMPOTENCY_KEY]
    _post["responses"].setdefault("409", _errors(409)["409"])
