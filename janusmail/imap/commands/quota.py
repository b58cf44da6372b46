"""GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208 QUOTA), over the store's one quota model
(janusmail/store/quotas.py, the same numbers JMAP Quota/get serves).

An account has one quota root, ``""``, which governs every mailbox: a message counts wherever it is, as many
times as it has memberships (what the store counts). The root exists while the account has a limit (RFC 9208's
quota list cannot be empty), and lists only the limited resources: STORAGE in units of 1024 octets (rounded
up), MESSAGE in messages. Limits are the administrator's (``janusmail quota set``): SETQUOTA is refused with
``NO [NOPERM]`` and QUOTASET is not advertised. A write over a limit is refused by the store (``OverQuota``),
which the session answers ``NO [OVERQUOTA]`` for APPEND, COPY and the rest alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from janusmail.imap.codec import MailboxArgs, QuotaRootArgs, responses
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.mailbox_tree import MailboxTree, read_tree
from janusmail.store.quotas import STORAGE, QuotaUsage

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession

ROOT = ""
CAPABILITIES = ("QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE")
_NAMES = {"storage": "STORAGE", "messages": "MESSAGE"}


def resources(usage: QuotaUsage) -> list[tuple[str, int, int]]:
    """(RFC 9208 resource name, usage, limit) for each limited resource; STORAGE in KiB, rounded up."""
    out = []
    for resource in usage.limited():
        used, limit = usage.used(resource), usage.limit(resource)
        assert limit is not None
        if resource == STORAGE:
            used, limit = -(-used // 1024), -(-limit // 1024)
        out.append((_NAMES[resource], used, limit))
    return out


def _tree_and_usage(store: Any, account_id: str) -> tuple[MailboxTree, QuotaUsage]:
    """One thread hop: the mailbox tree (is the named mailbox there?) and the account's quota."""
    return read_tree(store, account_id), store.quotas.get(account_id)


@handler("GETQUOTAROOT", states=("auth", "selected"), capabilities=CAPABILITIES)
async def getquotaroot(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, MailboxArgs)
    path = s.parse_mailbox(args.mailbox)
    tree, usage = await s.store.call(_tree_and_usage, s.rt.store, s.account_id)
    box = tree.find("/".join(path))
    if box is None:
        return Result.no("No such mailbox", "NONEXISTENT")
    limited = resources(usage)
    s.write(responses.quotaroot_response(tree.name_of(box), [ROOT] if limited else [], s.utf8))
    if limited:
        s.write(responses.quota_response(ROOT, limited, s.utf8))
    return Result.ok("GETQUOTAROOT completed")


@handler("GETQUOTA", states=("auth", "selected"), capabilities=CAPABILITIES)
async def getquota(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, QuotaRootArgs)
    usage = await s.store.call(s.store.quotas.get, s.account_id) if args.root == ROOT else None
    limited = resources(usage) if usage is not None else []
    if not limited:
        return Result.no("No such quota root", "NONEXISTENT")
    s.write(responses.quota_response(ROOT, limited, s.utf8))
    return Result.ok("GETQUOTA completed")


@handler("SETQUOTA", states=("auth", "selected"))
async def setquota(s: ImapSession, cmd: Command) -> Result:
    return Result.no("Quotas are set by the administrator", "NOPERM")
