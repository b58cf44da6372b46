"""Compiled SQL text per statement shape, for reads that run on the raw DB-API cursor (a per-Store cache).

Why: :func:`.rawrows.raw_rows` skips SQLAlchemy's Row objects (worth it for 100k-row FETCHes) but also its
compiled-statement cache, so it compiles the statement on every call: on a small FETCH that compile was the
biggest single cost of the command (issue 10 item 0, ``bench/command_cost.py``). A read whose statement has a
fixed *shape* (which columns, which conditions, how many UID ranges) with bound parameters for the values
compiles once per shape here and then only binds values. Shapes are few (a bounded LRU keeps the rest out).
The cache is an attribute of a Store service (one engine, one dialect), never module state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import sqlalchemy as sa

__all__ = ["SqlText"]


class SqlText:
    """Statement shape -> (SQL text, parameter order, compile-time values), least recently used dropped."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._texts: OrderedDict[Hashable, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.compiles = 0

    def rows(self, conn: sa.Connection, shape: Hashable, build: Callable[[], sa.Executable],
             params: Mapping[str, Any]) -> list[tuple]:
        """All rows of the statement ``build()`` makes for ``shape`` (called only the first time), with
        ``params`` for its bound parameters, as plain tuples, in the caller's connection and transaction."""
        with self._lock:
            entry = self._texts.get(shape)
            if entry is not None:
                self._texts.move_to_end(shape)
        if entry is None:
            compiled = build().compile(dialect=conn.dialect)
            self.compiles += 1
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            entry = (str(compiled), order, dict(compiled.params))
            with self._lock:
                self._texts[shape] = entry
                while len(self._texts) > self.maxsize:
                    self._texts.popitem(last=False)
        sql, order, fixed = entry
        values = {**fixed, **params}
        args: Any = tuple(values[n] for n in order) if order is not None else values
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cur = dbapi.cursor()
        try:
            cur.execute(sql, args)
            return cur.fetchall()
        finally:
            cur.close()
