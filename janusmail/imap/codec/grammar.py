"""Command dispatch and the grammar of every command except SEARCH/SORT/THREAD and FETCH/STORE.

:func:`parse_command` turns one framed command into a :class:`Command` or :class:`ParseError`; in prefix
mode it returns None while the command is still a valid beginning.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from .args import (
    NO_ARGS,
    AppendArgs,
    AppendMessage,
    AuthenticateArgs,
    CancelUpdateArgs,
    CommandArgs,
    CompressArgs,
    CopyArgs,
    CreateArgs,
    EnableArgs,
    ExpungeArgs,
    IdArgs,
    ListArgs,
    LoginArgs,
    LsubArgs,
    MailboxArgs,
    QResync,
    QuotaRootArgs,
    RenameArgs,
    ReplaceArgs,
    SelectArgs,
    SetQuotaArgs,
    StatusArgs,
)
from .cursor import Cursor, Incomplete, SyntaxFault
from .events import Command, ParseError
from .grammar_catenate import catenate_parts
from .grammar_fetch import parse_fetch, parse_store
from .grammar_metadata import parse_getmetadata, parse_setmetadata
from .grammar_notify import parse_notify
from .grammar_search import parse_search, parse_sort, parse_thread
from .sequence import SequenceSet

__all__ = ["COMMANDS", "UID_COMMANDS", "parse_command"]

Handler = Callable[[Cursor, bool], CommandArgs]

_SASL_IR_RE = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
STATUS_ITEMS = frozenset(
    {
        "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
        "HIGHESTMODSEQ", "MAILBOXID", "DELETED-STORAGE", "APPENDLIMIT",
    }
)  # fmt: skip
_LIST_SELECT = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_BASE = frozenset({"SUBSCRIBED", "SPECIAL-USE"})


def _no_args(cur: Cursor, uid: bool) -> CommandArgs:
    cur.finish()
    return NO_ARGS


def _login(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    user = cur.astring("user name")
    cur.sp()
    password = cur.astring("password")
    cur.finish()
    return LoginArgs(user, password)


def _authenticate(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    mechanism = cur.keyword("SASL mechanism")
    initial = None
    if not cur.at_end():
        cur.sp()
        raw = cur.token(_SASL_IR_RE, "initial response")
        if raw == b"=":
            initial = b""
        else:
            try:
                initial = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise cur.fail("Invalid base64 in initial response") from None
    cur.finish()
    return AuthenticateArgs(mechanism, initial)


def _enable(cur: Cursor, uid: bool) -> CommandArgs:
    caps = []
    cur.sp()
    caps.append(cur.keyword("capability"))
    while not cur.at_end():
        cur.sp()
        caps.append(cur.keyword("capability"))
    return EnableArgs(tuple(caps))


def _qresync(cur: Cursor) -> QResync:
    cur.sp()
    cur.open()
    uidvalidity = cur.nz_number("UIDVALIDITY")
    cur.sp()
    modseq = cur.number64("mod-sequence", low=1)
    known = None
    match = None
    if cur.maybe(b" "):
        if cur.peek() != 0x28:
            known = cur.sequence_set()
            if cur.maybe(b" "):
                match = _seq_match(cur)
        else:
            match = _seq_match(cur)
    cur.close()
    return QResync(uidvalidity, modseq, known, match)


def _seq_match(cur: Cursor) -> tuple[SequenceSet, SequenceSet]:
    cur.open()
    seqs = cur.sequence_set()
    cur.sp()
    uids = cur.sequence_set()
    cur.close()
    return (seqs, uids)


def _select(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    mailbox = cur.mailbox()
    params: dict[str, QResync | None] = {}

    def param() -> None:
        name = cur.keyword("select parameter")
        if name == "CONDSTORE":
            params[name] = None
        elif name == "QRESYNC":
            params[name] = _qresync(cur)
        else:
            raise cur.fail(f"Unknown select parameter {name}")

    if not cur.at_end():
        cur.sp()
        cur.paren_list(param)
    cur.finish()
    return SelectArgs(mailbox, "CONDSTORE" in params, params.get("QRESYNC"))


def _create(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    mailbox = cur.mailbox()
    uses: list[str] = []

    def param() -> None:
        name = cur.keyword("create parameter")
        if name != "USE":
            raise cur.fail(f"Unknown create parameter {name}")
        cur.sp()
        for attr in cur.flag_list():
            if not attr.startswith("\\"):
                raise cur.fail("USE attributes start with a backslash")
            uses.append(attr)

    if not cur.at_end():
        cur.sp()
        cur.paren_list(param)
    cur.finish()
    return CreateArgs(mailbox, tuple(uses))


def _mailbox_only(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    mailbox = cur.mailbox()
    cur.finish()
    return MailboxArgs(mailbox)


def _rename(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    old = cur.mailbox()
    cur.sp()
    new = cur.mailbox()
    cur.finish()
    return RenameArgs(old, new)


def _status_item(cur: Cursor) -> str:
    item = cur.keyword("status item")
    if item not in STATUS_ITEMS:
        raise cur.fail(f"Unknown status item {item}")
    return item


def _status_items(cur: Cursor) -> tuple[str, ...]:
    return tuple(cur.paren_list(lambda: _status_item(cur)))


def _list(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    extended = False
    selection: set[str] = set()
    if cur.peek() == 0x28:
        extended = True
        for opt in cur.paren_list(lambda: cur.keyword("selection option"), allow_empty=True):
            if opt not in _LIST_SELECT:
                raise cur.fail(f"Unknown LIST selection option {opt}")
            selection.add(opt)
        if "RECURSIVEMATCH" in selection and not selection & _LIST_BASE:
            raise cur.fail("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE")
        cur.sp()
    reference = cur.mailbox()
    cur.sp()
    if cur.peek() == 0x28:
        extended = True
        patterns = cur.paren_list(cur.list_mailbox)
    else:
        patterns = [cur.list_mailbox()]
    returns: dict[str, tuple[str, ...] | None] = {}

    def return_option() -> None:
        opt = cur.keyword("return option")
        if opt == "STATUS":
            cur.sp()
            returns[opt] = _status_items(cur)
        elif opt in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
            returns[opt] = None
        else:
            raise cur.fail(f"Unknown LIST return option {opt}")

    if not cur.at_end():
        cur.sp()
        if not cur.try_keyword("RETURN"):
            raise cur.fail("Expected RETURN")
        extended = True
        cur.sp()
        cur.paren_list(return_option, allow_empty=True)
    cur.finish()
    return ListArgs(
        reference,
        tuple(patterns),
        frozenset(selection),
        return_subscribed="SUBSCRIBED" in returns,
        return_children="CHILDREN" in returns,
        return_special_use="SPECIAL-USE" in returns,
        return_status=returns.get("STATUS"),
        extended=extended,
    )


def _lsub(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    reference = cur.mailbox()
    cur.sp()
    pattern = cur.list_mailbox()
    cur.finish()
    return LsubArgs(reference, pattern)


def _status(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    items = _status_items(cur)
    cur.finish()
    return StatusArgs(mailbox, items)


def _append(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    mailbox = cur.mailbox()
    messages: list[AppendMessage] = []
    while True:
        cur.sp()
        cur.extra_spaces()
        flags: tuple[str, ...] = ()
        if cur.peek() == 0x28:
            flags = cur.flag_list()
            cur.sp()
            cur.extra_spaces()
        date = None
        if cur.peek() == 0x22:
            date = cur.date_time()
            cur.sp()
            cur.extra_spaces()
        if cur.peek() == 0:
            data, binary = cur.literal(allow8=True)
            messages.append(AppendMessage(data, flags, date, binary=binary))
        else:
            word = cur.keyword("message literal")
            if word == "CATENATE":  # RFC 4469
                cur.sp()
                messages.append(AppendMessage(b"", flags, date, catenate=catenate_parts(cur)))
                if cur.at_end():
                    break
                continue
            if word != "UTF8":
                raise cur.fail("Expected message literal")
            cur.sp()
            cur.open()
            data, _ = cur.literal(allow8=True)
            cur.close()
            messages.append(AppendMessage(data, flags, date, utf8=True))
        if cur.at_end():
            break
    return AppendArgs(mailbox, tuple(messages))


_SEQ_NUMBER_RE = re.compile(rb"[1-9][0-9]*|\*")


def _replace(cur: Cursor, uid: bool) -> CommandArgs:
    """RFC 8508: ``REPLACE SP seq-number SP mailbox SP append-message`` (one message, APPEND's form)."""
    cur.sp()
    raw = cur.token(_SEQ_NUMBER_RE, "message number")
    number = None if raw == b"*" else int(raw)
    if number is not None and number > 4294967295:
        raise cur.fail("Message number out of range")
    appended = _append(cur, uid)
    assert isinstance(appended, AppendArgs)
    if len(appended.messages) != 1:
        raise cur.fail("REPLACE takes exactly one message")
    return ReplaceArgs(number, appended.mailbox, appended.messages[0])


def _copy(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    mailbox = cur.mailbox()
    cur.finish()
    return CopyArgs(sequence, mailbox)


def _uid_expunge(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    sequence = cur.sequence_set()
    cur.finish()
    return ExpungeArgs(sequence)


def _expunge(cur: Cursor, uid: bool) -> CommandArgs:
    cur.finish()
    return ExpungeArgs(None)


def _id(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    if cur.peek() != 0x28:
        if cur.keyword("parameter list or NIL") != "NIL":
            raise cur.fail("Expected parameter list or NIL")
        cur.finish()
        return IdArgs(None)

    def pair() -> tuple[str, str | None]:
        key = cur.string()
        cur.sp()
        return key, cur.nstring()

    params = cur.paren_list(pair, allow_empty=True)
    cur.finish()
    return IdArgs(tuple(params))


def _compress(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    mechanism = cur.keyword("compression mechanism")
    cur.finish()
    return CompressArgs(mechanism)


def _getquota(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    root = cur.astring("quota root")
    cur.finish()
    return QuotaRootArgs(root)


def _setquota(cur: Cursor, uid: bool) -> CommandArgs:
    cur.sp()
    root = cur.astring("quota root")
    cur.sp()

    def limit() -> tuple[str, int]:
        resource = cur.keyword("resource name")
        cur.sp()
        return resource, cur.number64("limit")

    limits = cur.paren_list(limit, allow_empty=True)
    cur.finish()
    return SetQuotaArgs(root, tuple(limits))


def _cancelupdate(cur: Cursor, uid: bool) -> CommandArgs:
    """RFC 5267 §4.2: ``CANCELUPDATE tag-string *(SP tag-string)``."""
    tags = []
    while True:
        cur.sp()
        tags.append(cur.string())
        if cur.at_end():
            break
    return CancelUpdateArgs(tuple(tags))


COMMANDS: dict[str, Handler] = {
    **{
        name: _no_args
        for name in (
            "CAPABILITY",
            "NOOP",
            "LOGOUT",
            "STARTTLS",
            "IDLE",
            "CHECK",
            "CLOSE",
            "UNSELECT",
            "NAMESPACE",
            "GETJMAPACCESS",
        )
    },  # fmt: skip
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _mailbox_only,
    "SUBSCRIBE": _mailbox_only,
    "UNSUBSCRIBE": _mailbox_only,
    "GETQUOTAROOT": _mailbox_only,
    "RENAME": _rename,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "EXPUNGE": _expunge,
    "SEARCH": parse_search,
    "SORT": parse_sort,
    "THREAD": parse_thread,
    "FETCH": parse_fetch,
    "STORE": parse_store,
    "COPY": _copy,
    "MOVE": _copy,
    "ID": _id,
    "COMPRESS": _compress,
    "REPLACE": _replace,
    "UNAUTHENTICATE": _no_args,  # RFC 8437
    "GETMETADATA": parse_getmetadata,  # RFC 5464
    "SETMETADATA": parse_setmetadata,
    "GETQUOTA": _getquota,
    "SETQUOTA": _setquota,
    "NOTIFY": parse_notify,
    "CANCELUPDATE": _cancelupdate,
}

UID_COMMANDS: dict[str, Handler] = {
    "FETCH": parse_fetch,
    "SEARCH": parse_search,
    "STORE": parse_store,
    "COPY": _copy,
    "MOVE": _copy,
    "EXPUNGE": _uid_expunge,
    "REPLACE": _replace,
    "SORT": parse_sort,
    "THREAD": parse_thread,
}


def parse_command(
    buf: bytes, lits: list[tuple[bytes, bool]], *, partial: bool = False, max_depth: int = 32
) -> Command | ParseError | None:
    """Parse one framed command (literals replaced by NUL, payloads in ``lits``).

    With ``partial=True`` the input is a prefix ending in a pending literal: returns None if it can still
    become a valid command, a ParseError if it cannot.
    """
    cur = Cursor(buf, lits, partial=partial, max_depth=max_depth)
    tag: str | None = None
    name: str | None = None
    try:
        tag = cur.tag()
        if cur.at_end():
            raise SyntaxFault("Missing command name")
        cur.sp()
        word = cur.keyword("command name")
        uid = word == "UID"
        if uid:
            cur.sp()
            sub = cur.keyword("UID command")
            name = "UID " + sub
            handler = UID_COMMANDS.get(sub)
        else:
            name = word
            handler = COMMANDS.get(word)
        if handler is None:
            return ParseError(tag, f"Unknown command {name}", None)
        args = handler(cur, uid)
        if partial:
            return None
        cur.finish()
        return Command(tag, name, args)
    except Incomplete:
        return None
    except SyntaxFault as fault:
        where = f"{name}: " if name else ""
        return ParseError(tag, where + fault.text, fault.code, fault.status, command=name)
    except RecursionError:
        return ParseError(tag, "Command too complex", "LIMIT", command=name)
