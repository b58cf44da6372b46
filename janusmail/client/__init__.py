"""A small helper for IMAP client authors: reach JMAP from an authenticated IMAP connection (RFC 9698).

    import imaplib
    from janusmail.client import JmapBridge

    imap = imaplib.IMAP4_SSL("mail.example.com")
    imap.login(user, password)
    bridge = JmapBridge.from_imap(imap, username=user, password=password)
    if bridge:                                  # JMAPACCESS advertised and the session opened
        imap.select("INBOX", readonly=True)
        ids = bridge.email_ids(imap, [101, 102])  # IMAP UID -> JMAP Email id (OBJECTID EMAILID)
        snippets = bridge.call("SearchSnippet/get", {"filter": {"text": "invoice"}, "emailIds": list(ids.values())})

Works with an ``imaplib.IMAP4`` or an ``imapclient.IMAPClient`` (whose ``_imap`` is an imaplib object).
"""

from .bridge import JmapAccessError, JmapBridge, get_jmap_access_url, imap_capabilities

__all__ = ["JmapAccessError", "JmapBridge", "get_jmap_access_url", "imap_capabilities"]
