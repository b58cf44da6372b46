"""The core capability limits (RFC 8620 §2) the engine enforces.

Why one frozen object: the Session resource advertises these numbers and the engine must enforce the very
same ones, so the HTTP layer builds one ``Limits`` and hands it to both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CORE = "urn:ietf:params:jmap:core"


@dataclass(frozen=True, slots=True)
class Limits:
    max_size_request: int = 10_000_000
    max_calls_in_request: int = 16
    max_objects_in_get: int = 500
    max_objects_in_set: int = 500
    #: Cap applied to ``/changes`` and ``/queryChanges`` when the client asks for no maxChanges (or more).
    max_changes: int = 5000
    #: Cap applied to ``/query`` ``limit`` (null or larger values are clamped and reported, §5.5).
    max_query_limit: int = 10_000

    def capability(self) -> dict[str, int]:
        """The numbers as the Session's ``urn:ietf:params:jmap:core`` object names them (less upload ones)."""
        d = asdict(self)
        return {
            "maxSizeRequest": d["max_size_request"],
            "maxCallsInRequest": d["max_calls_in_request"],
            "maxObjectsInGet": d["max_objects_in_get"],
            "maxObjectsInSet": d["max_objects_in_set"],
        }


DEFAULT_LIMITS = Limits()
