"""Quirks of real client libraries that the server must accept."""

from __future__ import annotations

import imapclient

from janusmail.auth.passwords import make_credentials
from tests.mailgen import simple
from tests.serverutil import ServerThread, make_config


def test_imapclient_multiappend(tmp_path):
    """imapclient sends two spaces between a flag list and the literal; MULTIAPPEND must still work."""
    srv = ServerThread(make_config(tmp_path / "data")).start()
    try:
        srv.store.accounts.create("a@example.test", *make_credentials("pw"))
        client = imapclient.IMAPClient("127.0.0.1", port=srv.imap_port, ssl=False)
        client.login("a@example.test", "pw")
        client.multiappend("INBOX", [{"msg": simple(1), "flags": [b"\\Seen"]}, simple(2),
                                     {"msg": simple(3), "date": __import__("datetime").datetime(2026, 1, 2, 3, 4, 5)}])
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        assert len(uids) == 3
        assert b"\\Seen" in client.get_flags(uids[:1])[uids[0]]
        client.logout()
    finally:
        srv.stop()
