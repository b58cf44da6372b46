"""Issue 11, failures 6-8, over real sockets: the request from the compliance run and the RFC's answer.

6. CREATE subscribes nothing (RFC 9051 §6.3.4); the IMAP subscription is JMAP's ``isSubscribed``.
7. An IMAP4rev1 EXAMINE reports \\Recent messages without claiming them (RFC 3501 §6.3.2).
8. A name that is not valid modified UTF-7 names no mailbox: NO [NONEXISTENT] / an empty LIST, not BAD;
   CREATE of such a name is NO [CANNOT].
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

#: the name from the compliance script: every printable ASCII special, with a broken ``&`` shift
ODD = "!#$&'+,-.0123456789:;<=>?@^_`|[}"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    return Tenant(shared_server)


@pytest.fixture(scope="module")
def shared_pg_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def pg_server(shared_pg_server: ServerThread) -> Tenant:
    return Tenant(shared_pg_server)


def raw_login(srv: ServerThread) -> Raw:
    raw = Raw(srv.imap_port)
    out = raw.cmd("l", f'LOGIN {srv.address} "{srv.password}"')
    assert out[-1].startswith(b"l OK"), out
    return raw


def untagged_names(out: list[bytes], kind: bytes) -> dict[str, bytes]:
    """``* LIST``/``* LSUB`` lines by mailbox name."""
    found = {}
    for line in out:
        if line.startswith(b"* " + kind + b" "):
            found[line.split(b'"/" ', 1)[1].decode().split(" ", 1)[0]] = line
    return found


def deliver(srv: ServerThread, n: int) -> None:
    inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])
    for i in range(n):
        srv.run(srv.store.deliver(srv.account.id, simple(i), (inbox.id,)))


# -- 6. CREATE subscribes nothing -----------------------------------------------------------------------------


def test_create_subscribes_nothing(pg_server: Tenant) -> None:
    raw = raw_login(pg_server)
    assert raw.cmd("a", "CREATE q1/q2")[-1].startswith(b"a OK")
    out = raw.cmd("b", 'LSUB "" "q1*"')
    assert out == [b"b OK LSUB completed"]
    out = raw.cmd("c", 'LIST (SUBSCRIBED) "" "q1*"')
    assert out == [b"c OK LIST completed"]
    out = raw.cmd("d", 'LIST "" "q1*" RETURN (CHILDREN SUBSCRIBED)')
    assert out[:-1] == [b'* LIST (\\HasChildren) "/" q1', b'* LIST (\\HasNoChildren) "/" q1/q2'], out
    out = raw.cmd("e", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert not any(b"q1" in line for line in out), out  # no CHILDINFO ("SUBSCRIBED") either
    # the store flag is the one JMAP serves as isSubscribed
    for path in (["q1"], ["q1", "q2"]):
        assert pg_server.store.mailboxes.by_path(pg_server.account.id, path).subscribed is False
    # subscribe the child, then unsubscribe it: nothing is left behind for the parent
    assert raw.cmd("f", "SUBSCRIBE q1/q2")[-1].startswith(b"f OK")
    assert untagged_names(raw.cmd("g", 'LSUB "" "q1*"'), b"LSUB").keys() == {"q1/q2"}
    assert pg_server.store.mailboxes.by_path(pg_server.account.id, ["q1", "q2"]).subscribed is True
    assert raw.cmd("h", "UNSUBSCRIBE q1/q2")[-1].startswith(b"h OK")
    assert raw.cmd("i", 'LSUB "" "q1*"') == [b"i OK LSUB completed"]
    assert raw.cmd("j", 'LSUB "" "q1/%"') == [b"j OK LSUB completed"]
    assert not any(b"q1" in line for line in raw.cmd("m", 'LSUB "" "%"'))
    raw.close()


def test_default_mailboxes_stay_subscribed(server: Tenant) -> None:
    """The mailboxes an account is created with are subscribed: what clients expect of INBOX, Sent..."""
    raw = raw_login(server)
    lsub = untagged_names(raw.cmd("a", 'LSUB "" "*"'), b"LSUB")
    boxes = server.store.mailboxes.list(server.account.id)
    assert len(boxes) > 1 and all(b.subscribed for b in boxes)
    assert "INBOX" in lsub and len(lsub) == len(boxes), (lsub, boxes)
    raw.close()


def test_create_keeps_an_earlier_subscription_to_the_name(pg_server: Tenant) -> None:
    """SUBSCRIBE before CREATE (allowed, RFC 9051 §6.3.7): the subscription carries over to the mailbox."""
    raw = raw_login(pg_server)
    assert raw.cmd("a", "SUBSCRIBE later/box")[-1].startswith(b"a OK")
    assert raw.cmd("b", "CREATE later/box")[-1].startswith(b"b OK")
    out = raw.cmd("c", 'LIST (SUBSCRIBED) "" "later*"')
    assert out[:-1] == [b'* LIST (\\HasNoChildren \\Subscribed) "/" later/box'], out
    assert pg_server.store.mailboxes.by_path(pg_server.account.id, ["later", "box"]).subscribed is True
    assert pg_server.store.mailboxes.by_path(pg_server.account.id, ["later"]).subscribed is False
    assert raw.cmd("d", "UNSUBSCRIBE later/box")[-1].startswith(b"d OK")
    assert raw.cmd("e", 'LSUB "" "later*"') == [b"e OK LSUB completed"]  # no orphan row left behind
    raw.close()


# -- 7. EXAMINE shows \Recent without claiming it -------------------------------------------------------------


def test_examine_reports_recent_without_claiming(pg_server: Tenant) -> None:
    deliver(pg_server, 2)
    raw = raw_login(pg_server)
    out = raw.cmd("a", "EXAMINE INBOX")
    assert b"* 2 EXISTS" in out and b"* 2 RECENT" in out, out
    assert out[-1].startswith(b"a OK [READ-ONLY]")
    out = raw.cmd("b", "FETCH 1:* (FLAGS)")
    assert all(b"\\Recent" in line for line in out[:-1]) and len(out) == 3, out
    out = raw.cmd("c", "SEARCH RECENT")
    assert out[0] == b"* SEARCH 1 2", out
    # nothing was claimed: STATUS, another EXAMINE and a SELECT still see both
    out = raw.cmd("d", "STATUS INBOX (RECENT)")
    assert out[0] == b"* STATUS INBOX (RECENT 2)", out
    other = raw_login(pg_server)
    assert b"* 2 RECENT" in other.cmd("e", "EXAMINE INBOX")
    assert b"* 2 RECENT" in other.cmd("f", "SELECT INBOX")  # SELECT claims them ...
    third = raw_login(pg_server)
    assert b"* 0 RECENT" in third.cmd("g", "EXAMINE INBOX")  # ... so they are no longer recent
    for r in (raw, other, third):
        r.close()


# -- 8. undecodable names: NO, not BAD -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["SELECT", "EXAMINE", "STATUS", "DELETE", "UNSUBSCRIBE"])
def test_odd_name_is_nonexistent(server: Tenant, command: str) -> None:
    raw = raw_login(server)
    extra = " (MESSAGES)" if command == "STATUS" else ""
    out = raw.cmd("a", f"{command} {ODD}{extra}")
    assert out[-1].startswith(b"a NO [NONEXISTENT]"), out
    assert raw.cmd("b", "NOOP")[-1].startswith(b"b OK")  # the session carries on
    raw.close()


def test_odd_name_list_pattern_matches_nothing(server: Tenant) -> None:
    raw = raw_login(server)
    assert raw.cmd("a", f'LIST "" {ODD}%*') == [b"a OK LIST completed"]
    assert raw.cmd("b", f'LSUB "" {ODD}%*') == [b"b OK LSUB completed"]
    # in a multi-pattern LIST the undecodable pattern drops out; the others still match
    out = raw.cmd("c", f'LIST (SUBSCRIBED) "" ({ODD}% "INBOX")')
    assert out[:-1] == [b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX'], out
    assert raw.cmd("d", f'LIST "" ({ODD}% INBOX)')[:-1] == [b'* LIST (\\HasNoChildren) "/" INBOX']
    raw.close()


def test_odd_name_create_is_cannot(server: Tenant) -> None:
    """CREATE is well-formed but can never succeed for that name: NO [CANNOT] (RFC 5530), not BAD."""
    raw = raw_login(server)
    out = raw.cmd("a", f"CREATE {ODD}")
    assert out[-1].startswith(b"a NO [CANNOT]"), out
    out = raw.cmd("b", f"RENAME INBOX {ODD}")
    assert out[-1].startswith(b"b NO [CANNOT]"), out
    assert raw.cmd("c", 'LIST "" "*"')[-1] == b"c OK LIST completed"
    raw.close()


def test_odd_name_is_an_ordinary_name_for_utf8_sessions(server: Tenant) -> None:
    """With UTF-8 names (IMAP4rev2) the same string is a plain name: it can be created and selected."""
    raw = raw_login(server)
    assert raw.cmd("a", "ENABLE IMAP4rev2")[-1].startswith(b"a OK")
    assert raw.cmd("b", f"SELECT {ODD}")[-1].startswith(b"b NO [NONEXISTENT]")
    assert raw.cmd("c", f"CREATE {ODD}")[-1].startswith(b"c OK")
    assert raw.cmd("d", f"SELECT {ODD}")[-1].startswith(b"d OK")
    raw.close()


def test_jmap_sees_the_same_flag(pg_server: Tenant) -> None:
    """One flag, two protocols: IMAP CREATE leaves ``isSubscribed`` false; JMAP Mailbox/set create defaults
    it to true (RFC 8621 §2: true for mailboxes the user creates), which IMAP LSUB then shows."""
    from tests.jmap.test_front_harness import client_for

    raw = raw_login(pg_server)
    assert raw.cmd("a", "CREATE fromimap")[-1].startswith(b"a OK")
    j = client_for(pg_server, pg_server.address, pg_server.password)
    out = j.call("Mailbox/set", {"create": {"n": {"name": "fromjmap"}}})
    assert out["created"]["n"]["isSubscribed"] is True, out
    boxes = j.mailboxes()
    assert boxes["fromimap"]["isSubscribed"] is False and boxes["fromjmap"]["isSubscribed"] is True
    assert untagged_names(raw.cmd("b", 'LSUB "" "from*"'), b"LSUB").keys() == {"fromjmap"}
    assert raw.cmd("c", "SUBSCRIBE fromimap")[-1].startswith(b"c OK")
    assert j.mailboxes()["fromimap"]["isSubscribed"] is True
    raw.close()
