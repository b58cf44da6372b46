"""The three ways a JMAP request can fail, one per level of RFC 8620.

Why three classes: each level fails differently on the wire. A request-level problem (§3.6.1) replaces the
whole HTTP response with RFC 7807 problem details; a method-level error (§3.6.2) becomes one ``"error"``
invocation and the request carries on; a SetError (§5.3) fails one record inside an otherwise successful
``/set`` or ``/copy``. Handlers raise these; the engine and the generic methods turn them into JSON.
"""

from __future__ import annotations

from typing import Any

import orjson

PROBLEM_PREFIX = "urn:ietf:params:jmap:error:"
NOT_JSON = PROBLEM_PREFIX + "notJSON"
NOT_REQUEST = PROBLEM_PREFIX + "notRequest"
UNKNOWN_CAPABILITY = PROBLEM_PREFIX + "unknownCapability"
LIMIT = PROBLEM_PREFIX + "limit"

_TITLES = {
    NOT_JSON: "Request is not I-JSON",
    NOT_REQUEST: "Request does not match the JMAP Request type",
    UNKNOWN_CAPABILITY: "Unknown capability",
    LIMIT: "Request limit exceeded",
}


class ProblemDetails(Exception):
    """A request-level failure (RFC 8620 §3.6.1): nothing in the request was run.

    ``to_json()`` gives the RFC 7807 body; the HTTP layer sends it with ``status`` and the media type
    ``application/problem+json``.
    """

    def __init__(self, status: int, type: str, detail: str, limit: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type
        self.detail = detail
        self.limit = limit

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "status": self.status, "detail": self.detail}
        title = _TITLES.get(self.type)
        if title:
            body["title"] = title
        if self.limit is not None:
            body["limit"] = self.limit
        return body

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def __repr__(self) -> str:
        return f"ProblemDetails({self.status}, {self.type!r}, {self.detail!r}, limit={self.limit!r})"


class MethodError(Exception):
    """A method-level error (RFC 8620 §3.6.2): becomes ``["error", {"type": ..., **extra}, callId]``.

    A handler raises it *before* changing anything: apart from ``serverPartialFail`` a failed method must
    leave the data untouched, so raise early and write late.
    """

    def __init__(self, type: str, **extra: Any) -> None:
        super().__init__(type)
        self.type = type
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.extra}

    def __repr__(self) -> str:
        return f"MethodError({self.type!r}, {self.extra!r})"


def invalid_arguments(description: str) -> MethodError:
    """Shorthand for the most common error; the description helps client authors, never leaks internals."""
    return MethodError("invalidArguments", description=description)


class SetError(Exception):
    """One record failed in ``/set`` or ``/copy`` (RFC 8620 §5.3); the rest of the call goes on.

    Standard types: forbidden, overQuota, tooLarge, rateLimit, notFound, invalidPatch, willDestroy,
    invalidProperties (give ``properties``), singleton, alreadyExists (give ``existingId``), plus any
    type-specific ones (RFC 8621 adds mailboxHasChild, blobNotFound, ...).
    """

    def __init__(
        self,
        type: str,
        description: str | None = None,
        *,
        properties: list[str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(type)
        self.type = type
        self.description = description
        self.properties = properties
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.description is not None:
            out["description"] = self.description
        if self.properties is not None:
            out["properties"] = list(self.properties)
        out.update(self.extra)
        return out

    def __repr__(self) -> str:
        return f"SetError({self.type!r}, {self.description!r}, properties={self.properties!r})"
