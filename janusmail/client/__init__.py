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

Beyond single calls the bridge reads the account's mailboxes and their paths (``mailboxes``, ``mailbox_paths``),
gets any number of Emails within the server's ``maxObjectsInGet`` (``get_emails``) and changes keywords
(``set_keywords``); :class:`JmapAccessError` carries the HTTP ``status`` and ``challenge`` of a refusal.
``janusmail.client.keywords`` maps IMAP flags to JMAP keywords (RFC 8621 §4.1.1). ``janusmail check``
(janusmail/check/) is built on all of it.
"""

from .bridge import JmapAccessError, JmapBridge, get_jmap_access_url, imap_capabilities
from .keywords import flags_to_keywords, keywords_to_flags, normalize_keywords

__all__ = ["JmapAccessError", "JmapBridge", "flags_to_keywords", "get_jmap_access_url", "imap_capabilities",
           "keywords_to_flags", "normalize_keywords"]
