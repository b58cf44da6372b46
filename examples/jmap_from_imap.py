"""Example: an IMAP client uses one JMAP call (search snippets) through JMAPACCESS, keeping its IMAP code.

    python examples/jmap_from_imap.py HOST PORT ADDRESS PASSWORD [WORD]

Against `make run`: python examples/jmap_from_imap.py 127.0.0.1 1143 demo@janus.test "$(cat var/demo-password)" Janus
"""

from __future__ import annotations

import imaplib
import sys

from janusmail.client import JmapBridge


def main() -> None:
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    word = sys.argv[5] if len(sys.argv) > 5 else "the"
    imap = imaplib.IMAP4(host, port)
    imap.login(user, password)
    bridge = JmapBridge.from_imap(imap, username=user, password=password)
    if bridge is None:
        print("This server does not offer JMAP for these credentials; staying with IMAP.")
        return
    print(f"JMAP session: {bridge.session_url} (account {bridge.account_id})")
    imap.select("INBOX", readonly=True)
    typ, data = imap.uid("SEARCH", "ALL")
    uids = [int(u) for u in data[0].split()][-20:]
    ids = bridge.email_ids(imap, uids)
    result = bridge.call("SearchSnippet/get", {"filter": {"text": word}, "emailIds": list(ids.values())})
    by_id = {v: k for k, v in ids.items()}
    for snip in result["list"]:
        if snip.get("subject") or snip.get("preview"):
            print(f"UID {by_id[snip['emailId']]}: {snip.get('subject')!r} … {snip.get('preview')!r}")
    imap.logout()
    bridge.close()


if __name__ == "__main__":
    main()
