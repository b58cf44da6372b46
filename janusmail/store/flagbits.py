"""The four IMAP system flags as bits of ``emails.flags``, for code that must not import the schema.

The doors test and set these bits on the plain rows the store's views return (FETCH's implicit ``\\Seen``,
metadata SEARCH); the schema module defines them next to the column, this module is their public name."""

from __future__ import annotations

from typing import Final

from . import schema

__all__ = ["FLAG_ANSWERED", "FLAG_DRAFT", "FLAG_FLAGGED", "FLAG_SEEN"]

FLAG_SEEN: Final[int] = schema.FLAG_SEEN
FLAG_ANSWERED: Final[int] = schema.FLAG_ANSWERED
FLAG_FLAGGED: Final[int] = schema.FLAG_FLAGGED
FLAG_DRAFT: Final[int] = schema.FLAG_DRAFT
