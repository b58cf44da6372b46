"""Sans-IO JMAP request engine (RFC 8620 §3 and §5): bytes in, bytes out, no HTTP and no store.

Layers, bottom up:
  request   parse/validate a Request; request-level ProblemDetails (RFC 7807)
  dispatch  Engine: method registry, in-order calls, result references, createdIds, error wrapping
  standard  one generic /get /changes /set /copy /query /queryChanges over a TypeAdapter
  adapter   the TypeAdapter contract and its data classes (what a data type implements)
  types, args, patch, pointer, querytools   shared validators and helpers

A data type module writes ``class MailboxAdapter(TypeAdapter)`` and calls
``register_standard(engine, "Mailbox", MAIL, MailboxAdapter(...))``.
"""

from .adapter import (
    AddedItem,
    Call,
    ChangeEntry,
    ChangeLog,
    Comparator,
    FilterOperator,
    QueryChangesResult,
    QueryResult,
    SetResult,
    TypeAdapter,
)
from .dispatch import (
    AccountAccess,
    AccountPolicy,
    CallContext,
    CallInfo,
    Engine,
    RequestState,
    StaticAccounts,
)
from .errors import MethodError, ProblemDetails, SetError, invalid_arguments
from .limits import CORE, DEFAULT_LIMITS, Limits
from .patch import apply_patch, validate_patch
from .pointer import PointerError, evaluate
from .querytools import diff_query, matches, window
from .request import Invocation, Request, parse_request, validate_request
from .standard import register_standard

__all__ = [
    "CORE",
    "DEFAULT_LIMITS",
    "AccountAccess",
    "AccountPolicy",
    "AddedItem",
    "Call",
    "CallContext",
    "CallInfo",
    "ChangeEntry",
    "ChangeLog",
    "Comparator",
    "Engine",
    "FilterOperator",
    "Invocation",
    "Limits",
    "MethodError",
    "PointerError",
    "ProblemDetails",
    "QueryChangesResult",
    "QueryResult",
    "Request",
    "RequestState",
    "SetError",
    "SetResult",
    "StaticAccounts",
    "TypeAdapter",
    "apply_patch",
    "diff_query",
    "evaluate",
    "invalid_arguments",
    "matches",
    "parse_request",
    "register_standard",
    "validate_patch",
    "validate_request",
    "window",
]
