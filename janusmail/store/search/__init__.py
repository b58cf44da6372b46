"""Search, owned by the store: one query AST (:mod:`.ast`) that IMAP SEARCH and JMAP Email/query both build,
one compiler to SQL + full text (:mod:`.compile`), the row-cache evaluator (:mod:`.memory`), the snippet
highlighter (:mod:`.highlight`) and the service the doors call (``store.search``, :mod:`.service`)."""

from .service import SearchService

__all__ = ["SearchService"]
