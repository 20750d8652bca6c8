"""Domain errors that the API and UI turn into clear 4xx answers."""
from __future__ import annotations


class DomainError(Exception):
    """Base: `code` is a short machine word, `field` names the offending input if any."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after  # seconds, sent as Retry-After
        if code:
            self.code = code


class InvalidInput(DomainError):
    """Well-formed but invalid input (422)."""

    status = 422
    code = "invalid"


class TemplateError(InvalidInput):
    """A template that does not compile; `line` is 1-based within the named part."""

    code = "template_error"

    def __init__(self, message: str, *, field: str, line: int | None = None):
        where = f" (line {line})" if line else ""
        super().__init__(f"{field}{where}: {message}", field=field)
        self.line = line
        self.detail = message


class RenderError(TemplateError):
    """A template that compiles but fails while rendering with this data (1/0, say)."""

    code = "render_error"


class MissingData(Exception):
    """A template used a variable (or an attribute of one) with no value and no fallback."""

    def __init__(self, variable: str, part: str, attribute: bool = False):
        what = f"attribute '{variable}'" if attribute else f"'{variable}'"
        example = f"x.{variable}" if attribute else variable
        super().__init__(f"no value for {what} in {part} and no fallback "
                         f"(write {{{{ {example} | default('...') }}}} to give one)")
        self.variable = variable
        self.part = part


class NotFound(DomainError):
    """Missing, or owned by another team (the two are not told apart)."""

    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The object is in a state that does not allow the action (409)."""

    status = 409
    code = "conflict"


class Forbidden(DomainError):
    """The caller's role in the team does not allow this (403)."""

    status = 403
    code = "forbidden"
