"""``janusmail check``: does an IMAP server's RFC 9698 JMAPACCESS promise hold, and do its RFC 8474 ids really
name the same objects over JMAP? For any server, not only Janus.

Layout (judging separated from talking):

* ``wire``     - the exact IMAP lines of an exchange: capability lists, quoted strings (pure);
* ``rfc9698``  - verdicts on JMAPACCESS from recorded exchanges and the JMAP session outcome (pure);
* ``rfc8474``  - verdicts on ids, tree, threads and keywords from sampled IMAP and JMAP data (pure);
* ``imap_io``  - the IMAP connection (imapclient, with every response line recorded);
* ``writes``   - the ``--write`` round trip (a flag through each door, then restored);
* ``runner``   - the order of it all; JMAP is reached through :class:`janusmail.client.JmapBridge`;
* ``render``   - the rich table and the JSON.

The command line is ``janusmail/cli/check.py``; exit status 0 when every check holds, 1 when one failed, 2 when
the server could not be checked at all.
"""
