"""Logging for ``janusmail serve``: one line per event, as text or JSON, each carrying its connection's ids.

Why a context variable for the ids: a log line is written deep inside a session (the store call that failed,
the credential check that ended it), far from the adapter that knows which connection this is. Each
connection and each HTTP request runs in an asyncio task of its own, and a task runs in a copy of the context
it was created in, so what the adapter binds at the start (:func:`bind`: ``sid``, later ``account``) is seen by
every line that task and the tasks it starts write, and by nobody else's. ``sid`` names the connection (IMAP,
LMTP, submission) or the HTTP request (JMAP) and starts with its door (``imap-…``, ``jmap-…``); ``account`` is
the account id once known, which is what ties one principal's IMAP session to its JMAP requests.

:func:`event` writes a structured line: a name (``imap.login``) and fields. As text they follow the message as
``key=value``; as JSON (``--log-format json``) every line is one object with ``ts``, ``level``, ``logger``,
``msg``, the context ids and the fields at its top level, so a log shipper needs no parsing rules.

Secrets: no door logs a command's arguments, a header or a SASL response. :class:`SecretScrubber` is the
second line of defence, for libraries that log what they read at debug level (aiosmtpd logs every SMTP
command line, ``AUTH PLAIN <base64 secret>`` included): it blanks the credential part of AUTH command lines
and of ``Authorization`` headers in any message before it is written.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "SecretScrubber", "TextFormatter", "bind", "configure", "context", "event", "new_id"]

#: The ids of the connection or request the current task serves (see the module docstring).
_CONTEXT: ContextVar[Mapping[str, str] | None] = ContextVar("janusmail_log_context", default=None)

#: Third-party loggers and the level they get unless debugging (their per-command chatter is noise).
_QUIET = ("alembic", "mail.log")


def new_id(door: str) -> str:
    """A fresh id for one connection or request: ``door-`` and 10 hex digits, unique across worker processes
    without coordination (random, not a counter)."""
    return f"{door}-{os.urandom(5).hex()}"


def bind(**fields: str | None) -> None:
    """Add ids to the current task's log context (``None`` removes one)."""
    current = _CONTEXT.get() or {}
    merged = {**current, **fields}
    _CONTEXT.set({k: v for k, v in merged.items() if v is not None})


def context() -> Mapping[str, str]:
    """The current task's log context."""
    return _CONTEXT.get() or {}


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Write one structured line: event ``name`` with ``fields`` (nothing is built when the level is off)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


class ContextFilter(logging.Filter):
    """Stamps every record with the log context of the task (or thread) that wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = _CONTEXT.get()
        return True


#: ``AUTH``/``AUTHENTICATE`` + mechanism + the initial response (SMTP, IMAP), and HTTP ``Authorization`` values.
_AUTH_LINE = re.compile(r"(\bAUTH(?:ENTICATE)?\s+[A-Za-z0-9_-]+\s+)[A-Za-z0-9+/=._~-]+", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"(\b(?:proxy-)?authorization\b['\"]?\s*[:,]\s*['\"]?\w+\s+)[^\s'\"]+", re.IGNORECASE)
_REDACTED = r"\1[redacted]"


class SecretScrubber(logging.Filter):
    """Blanks credentials in AUTH command lines and Authorization headers (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the formatter's to report
            return True
        scrubbed = _AUTH_HEADER.sub(_REDACTED, _AUTH_LINE.sub(_REDACTED, message))
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER[worker N]: message key=value ... [sid=... account=...]``."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.tag = f"[worker {worker}]" if worker is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields = getattr(record, "fields", None)
        if fields:
            message += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        ctx = getattr(record, "ctx", None)
        if ctx:
            message += " [" + " ".join(f"{k}={_text_value(v)}" for k, v in ctx.items()) + "]"
        line = f"{self.formatTime(record)} {record.levelname} {record.name}{self.tag}: {message}"
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line (orjson): ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, ``worker``
    under ``serve --workers``, the context ids, the event's fields, and ``exc`` with a traceback."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        import orjson

        self._dumps = orjson.dumps
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.worker is not None:
            doc["worker"] = self.worker
        ctx = getattr(record, "ctx", None)
        if ctx:
            doc.update(ctx)
        fields = getattr(record, "fields", None)
        if fields:
            for key, value in fields.items():
                doc.setdefault(key, value)
        if record.exc_info:
            doc["exc"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return self._dumps(doc, default=str).decode()


class _StderrHandler(logging.StreamHandler):
    """Writes each line to whatever ``sys.stderr`` is when the line is written, not what it was at set-up: a
    program that swaps it (pytest's capture, a CLI command run in-process, a daemon redirecting it) would
    otherwise leave the handler writing to a closed file, and every later line would fail to print."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - a text stream, as StreamHandler's attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001 - set by StreamHandler.__init__/setStream: always stderr
        pass


def configure(level: int, fmt: str = "text", *, worker: int | None = None) -> None:
    """Log to stderr at ``level`` in ``fmt`` (``text`` or ``json``), replacing any earlier set-up; ``worker``
    names the worker process of ``serve --workers`` in every line."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter(worker) if fmt == "json" else TextFormatter(worker))
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretScrubber())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
