"""Compiled SQL text per statement, run on the raw DB-API cursor (a per-Store cache).

Why: executing a Core statement through SQLAlchemy costs far more than running it. Measured on SQLite here,
one primary-key read costs ~170 us when the statement is built per call (expression, cache key, compiled-cache
lookup, execution context, Row objects), ~65 us when it is built once at import, and ~7 us as compiled text on
the driver's cursor. The hot paths of a busy server run dozens of small statements per IMAP command (the
writer thread of the concurrent stress profile spent most of its time in that machinery, issue 10 item 0), so
they keep their statements as SQLAlchemy Core built ONCE (one dialect-neutral definition, bound parameters,
safe quoting) and run them here: compiled the first time per dialect and shape, then only bound and executed.

Two ways in:

* :meth:`SqlText.rows` with a *shape* key and a ``build`` callable, for reads whose statement varies in shape
  (FETCH: which columns, how many UID ranges): compiled once per shape;
* :meth:`SqlText.run` / :meth:`first` / :meth:`scalar` / :meth:`count` / :meth:`many` with a statement built at
  import (``sa.bindparam`` for every value): compiled once per statement. An *expanding* bind parameter
  (``sa.bindparam("ids", expanding=True)``, for ``IN``) is expanded here, to a placeholder count rounded up to
  a power of two (the list padded with its last value, which ``IN`` cannot tell from the list): a few shapes per
  statement, not one per list length. Only for ``IN``: an empty list becomes ``IN (NULL)``, which matches
  nothing (``NOT IN`` would not mean what it says, so do not use it with an expanding parameter).

Rows come back as plain tuples (no type processing: booleans are ints on SQLite, binary columns ``bytes``),
in the caller's connection and transaction. Listeners of ``before_cursor_execute`` still hear every statement,
and driver errors still leave as SQLAlchemy's exceptions (see :func:`_execute`). The cache is an attribute of a Store or a service (one engine, one
dialect), never module state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

__all__ = ["SqlText"]

_POSTCOMPILE = "__[POSTCOMPILE_{}]"


class _Text:
    """One compiled statement: SQL text per expansion sizes, parameter order, values fixed at build time."""

    __slots__ = ("stmt", "sql", "order", "fixed", "expanding", "named", "by_sizes")

    def __init__(self, stmt: Any, compiled: sa.sql.compiler.Compiled) -> None:
        self.stmt = stmt  # kept alive: the cache is keyed by its id
        self.sql = str(compiled)
        self.named = not compiled.positional
        self.order: tuple[str, ...] = tuple(compiled.positiontup or ()) if compiled.positional else ()
        binds = compiled.binds
        #: values given when the statement was built (``.values(flags=0)``); the caller gives the required ones
        self.fixed = {k: v for k, v in compiled.params.items() if k in binds and not binds[k].required}
        self.expanding = tuple(name for name, bp in binds.items() if bp.expanding)
        #: (sizes of the expanding parameters) -> (sql, order) with those many placeholders
        self.by_sizes: dict[tuple[int, ...], tuple[str, tuple[str, ...]]] = {}

    def expanded(self, sizes: tuple[int, ...]) -> tuple[str, tuple[str, ...]]:
        hit = self.by_sizes.get(sizes)
        if hit is not None:
            return hit
        sql, order = self.sql, list(self.order)
        for name, n in zip(self.expanding, sizes, strict=True):
            names = [f"{name}_{i}" for i in range(1, n + 1)]
            if self.named:
                text = ", ".join(f"%({x})s" for x in names)
            else:
                text = ", ".join("?" for _ in names)
                i = order.index(name)
                order[i : i + 1] = names
            text = text or "NULL"
            sql = sql.replace(_POSTCOMPILE.format(name), text)
        hit = (sql, tuple(order))
        self.by_sizes[sizes] = hit
        return hit

    def bind(self, params: Mapping[str, Any] | None) -> tuple[str, Any]:
        """The SQL text and the driver's arguments for ``params`` (it runs for every statement: kept short)."""
        values: Mapping[str, Any] = ({**self.fixed, **params} if self.fixed else params) if params else self.fixed
        if not self.expanding:
            return self.sql, (values if self.named else tuple([values[n] for n in self.order]))
        lists = {}
        for name in self.expanding:
            items = list(values[name])
            if items:
                items.extend(items[-1:] * (_bucket(len(items)) - len(items)))
            lists[name] = items
        sql, _ = self.expanded(tuple(len(v) for v in lists.values()))
        if self.named:
            out = {k: v for k, v in values.items() if k not in lists}
            for name, items in lists.items():
                out.update((f"{name}_{i}", v) for i, v in enumerate(items, 1))
            return sql, out
        args: list[Any] = []
        for n in self.order:
            items = lists.get(n)
            if items is None:
                args.append(values[n])
            else:
                args.extend(items)
        return sql, tuple(args)


def _bucket(n: int) -> int:
    """Placeholders for a list of ``n``: the next power of two (0 stays 0)."""
    return 1 << (n - 1).bit_length() if n > 1 else n


class SqlText:
    """Statement (or shape) -> compiled text; least recently used shapes dropped past ``maxsize``."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._texts: OrderedDict[Hashable, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = OrderedDict()
        self._stmts: dict[int, _Text] = {}
        self._lock = threading.Lock()
        self.compiles = 0

    # -- statements whose shape varies (FETCH) ----------------------------------------------------------------

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
        cur = _execute(conn, sql, args)
        try:
            return cur.fetchall()
        finally:
            cur.close()

    # -- statements built once --------------------------------------------------------------------------------

    def _text(self, conn: sa.Connection, stmt: sa.Executable) -> _Text:
        text = self._stmts.get(id(stmt))
        if text is None or text.stmt is not stmt:
            text = _Text(stmt, stmt.compile(dialect=conn.dialect))
            self.compiles += 1
            with self._lock:
                self._stmts[id(stmt)] = text
        return text

    def run(self, conn: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """Execute ``stmt`` (built once) with ``params``; its rows (a SELECT's, an UPDATE's RETURNING), or []."""
        sql, args = self._text(conn, stmt).bind(params)
        cur = _execute(conn, sql, args)
        try:
            return cur.fetchall() if cur.description is not None else []
        finally:
            cur.close()

    def first(self, conn: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | None = None
              ) -> tuple | None:
        """The first row of :meth:`run`, or None."""
        rows = self.run(conn, stmt, params)
        return rows[0] if rows else None

    def scalar(self, conn: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        rows = self.run(conn, stmt, params)
        return rows[0][0] if rows else None

    def column(self, conn: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | None = None) -> list:
        """The first column of every row."""
        return [r[0] for r in self.run(conn, stmt, params)]

    def count(self, conn: sa.Connection, stmt: sa.Executable, params: Mapping[str, Any] | None = None) -> int:
        """Execute an UPDATE or DELETE; the number of rows it matched."""
        sql, args = self._text(conn, stmt).bind(params)
        cur = _execute(conn, sql, args)
        try:
            return cur.rowcount
        finally:
            cur.close()

    def many(self, conn: sa.Connection, stmt: sa.Executable, rows: Iterable[Mapping[str, Any]]) -> None:
        """Execute ``stmt`` once per parameter set (INSERT of many rows), as one driver ``executemany``. The
        statement may not have expanding parameters."""
        text = self._text(conn, stmt)
        assert not text.expanding, "executemany with an expanding parameter"
        args: Sequence[Any]
        if text.named:
            args = [{**text.fixed, **r} for r in rows] if text.fixed else list(rows)
        else:
            order, fixed = text.order, text.fixed
            args = [tuple([r[n] if n in r else fixed[n] for n in order]) for r in rows]
        if not args:
            return
        _execute(conn, text.sql, args, many=True).close()


def _execute(conn: sa.Connection, sql: str, args: Any, *, many: bool = False) -> Any:
    """Run ``sql`` on a new cursor of ``conn``'s driver connection and return the cursor. What SQLAlchemy's own
    execution keeps is kept: the ``before_cursor_execute`` listeners (the group commit's guard against a second
    writer, tests' fault injection) and the dialect's ``do_execute`` / ``do_executemany`` hear the statement,
    and a driver error leaves as SQLAlchemy's exception for it (``IntegrityError``, ``OperationalError``...),
    so ``faults.mapped`` and the callers' handlers see what they would have seen."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dialect = conn.dialect
    cur = dbapi.cursor()
    try:
        listeners = conn.dispatch.before_cursor_execute
        if listeners:  # (none in production: asking costs less than calling an empty list, per statement)
            listeners(conn, cur, sql, args, None, many)
        if many:
            dialect.do_executemany(cur, sql, args, None)
        else:
            dialect.do_execute(cur, sql, args, None)
    except BaseException as exc:
        cur.close()
        base = dialect.loaded_dbapi.Error
        if isinstance(exc, base):
            raise sa.exc.DBAPIError.instance(sql, args, exc, base, dialect=dialect, ismulti=many) from exc
        raise
    return cur
