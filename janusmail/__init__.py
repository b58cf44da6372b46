"""Janus Mail: one mailstore, two doors (IMAP and JMAP)."""
__version__ = "0.1.0"
