"""The on-disk shape of ``janusmail export``, shared by the exporter and by ``import`` that reads it back.

One module for both directions so that the two cannot drift: whatever ``export`` writes, ``import`` reads
into the same mailboxes, bytes, flags, keywords and internal dates.

Maildir (the default) is Maildir++ as Dovecot writes it: the root is INBOX, every other mailbox a ``.A.B``
folder (INBOX's children ``.INBOX.Child``); a message is one file, unchanged, named
``<internal date>.J<uid>.janusmail:2,<flags>`` with its mtime set to the internal date; the info flags are
``D F R S T`` (draft, flagged, answered, seen, \\Deleted) followed by one letter ``a``-``z`` per keyword, the
letters mapped to names by the folder's ``dovecot-keywords`` file (``0 $Forwarded`` is ``a``).

mbox is one file per mailbox, ``INBOX.mbox``, ``Work.mbox``, children in a directory named like the parent
(``Work/Projects.mbox``), in the mboxrd flavour: a ``From `` line carrying the internal date, then three
header lines the export adds in front of the message (``Status``, ``X-Status``, ``X-Keywords``: the flags as
mutt and Dovecot read them), the message with every line matching ``>*From `` quoted by one more ``>``, and one
blank line. A message whose last byte is not a newline gets a fourth line ``X-Janus-Unterminated: yes`` (mbox
cannot otherwise say so). ``import`` of the export removes exactly those lines and the quoting, so the stored
bytes are the exported bytes.

Mailbox names on disk escape ``\\``, ``.`` and ``/`` as ``\\`` + two hex digits (Dovecot's listescape), so a
name with a dot neither splits a Maildir++ folder nor collides with an ``.mbox`` file; everything else stays
UTF-8.

``janusmail-export.json`` at the root lists every mailbox (empty ones too) with its special-use role and
subscription, and, for Maildir, the keywords beyond a folder's 26 letters. ``import`` reads it when present.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

MANIFEST = "janusmail-export.json"
FORMAT_VERSION = 1
KEYWORDS_FILE = "dovecot-keywords"
MBOX_SUFFIX = ".mbox"

#: Maildir info letters of the system flags (keyword form, as the store spells them).
MAILDIR_FLAGS: dict[str, str] = {"D": "$draft", "F": "$flagged", "R": "$answered", "S": "$seen"}
#: The Maildir letter of IMAP's \\Deleted (a property of the membership, not a keyword, in the store).
MAILDIR_DELETED = "T"
#: At most this many keywords get letters per Maildir folder (a-z); the rest go to the manifest.
MAILDIR_LETTERS = 26

#: X-Status letters (Dovecot, mutt): answered, flagged, draft, \\Deleted.
X_STATUS: dict[str, str] = {"A": "$answered", "F": "$flagged", "T": "$draft"}
X_STATUS_DELETED = "D"
SYSTEM = frozenset({"$seen", "$answered", "$flagged", "$draft"})

_ESCAPE = re.compile(r"[\\./]")
_UNESCAPE = re.compile(r"\\([0-9a-fA-F]{2})")


def escape_name(name: str) -> str:
    return _ESCAPE.sub(lambda m: f"\\{ord(m.group(0)):02x}", name)


def unescape_name(text: str) -> str:
    return _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def maildir_folder(path: list[str]) -> str:
    """The Maildir++ folder of a mailbox path: ``""`` (the root) for INBOX, else ``.A.B``."""
    if [p.upper() for p in path] == ["INBOX"]:
        return ""
    return "." + ".".join(escape_name(p) for p in path)


def mbox_file(path: list[str]) -> Path:
    """The mbox file of a mailbox path, relative to the export root."""
    *parents, leaf = path
    return Path(*[escape_name(p) for p in parents], escape_name(leaf) + MBOX_SUFFIX)


class ExportFormatError(ValueError):
    """A ``janusmail-export.json`` that cannot be read: the import stops before writing anything."""


@dataclass
class MailboxEntry:
    path: list[str]
    role: str | None = None
    subscribed: bool = True


@dataclass
class Manifest:
    format: str  # "maildir" or "mbox"
    mailboxes: list[MailboxEntry] = field(default_factory=list)
    #: Maildir only: "<folder>/cur/<name before :2,>" -> keywords that got no letter (a folder with > 26)
    extra_keywords: dict[str, list[str]] = field(default_factory=dict)
    account: str = ""
    exported_at: int = 0

    def write(self, root: Path) -> None:
        doc = {"janusmail_export": FORMAT_VERSION, "format": self.format, "account": self.account,
               "exported_at": self.exported_at or int(time.time()),
               "mailboxes": [{"path": m.path, "role": m.role, "subscribed": m.subscribed} for m in self.mailboxes],
               "extra_keywords": self.extra_keywords}
        (root / MANIFEST).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")

    @classmethod
    def read(cls, root: Path) -> Manifest | None:
        """The manifest of an export at ``root``; None when ``root`` is not one (a plain Maildir or mbox)."""
        file = root / MANIFEST
        if not root.is_dir() or not file.is_file():
            return None
        try:
            doc = orjson.loads(file.read_bytes())
            if doc.get("janusmail_export") != FORMAT_VERSION or doc.get("format") not in ("maildir", "mbox"):
                raise ValueError("unknown export format")
            boxes = [MailboxEntry([str(p) for p in m["path"]], m.get("role"), bool(m.get("subscribed", True)))
                     for m in doc.get("mailboxes", [])]
            extra = {str(k): [str(x) for x in v] for k, v in (doc.get("extra_keywords") or {}).items()}
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ExportFormatError(f"{file} is not a janusmail export manifest: {exc}") from None
        return cls(doc["format"], boxes, extra, str(doc.get("account", "")), int(doc.get("exported_at") or 0))


# -- Maildir ------------------------------------------------------------------------------------------------

def maildir_info(keywords: list[str], deleted: bool, letters: dict[str, str]) -> tuple[str, list[str]]:
    """(info flags after ``:2,``, keywords without a letter). ``letters``: lowercase keyword -> its letter."""
    keys = {k.lower() for k in keywords}
    flags = [c for c, kw in MAILDIR_FLAGS.items() if kw in keys]
    if deleted:
        flags.append(MAILDIR_DELETED)
    extra: list[str] = []
    for kw in keywords:
        if kw.lower() in SYSTEM:
            continue
        letter = letters.get(kw.lower())
        if letter is None:
            extra.append(kw)
        else:
            flags.append(letter)
    return "".join(sorted(flags)), extra


def read_keyword_letters(folder: Path) -> dict[str, str]:
    """Letter -> keyword name from a folder's ``dovecot-keywords`` (``<index> <name>`` lines; 0 is ``a``)."""
    out: dict[str, str] = {}
    try:
        text = (folder / KEYWORDS_FILE).read_text("utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        idx, _, name = line.strip().partition(" ")
        if idx.isdigit() and name and int(idx) < MAILDIR_LETTERS:
            out[chr(ord("a") + int(idx))] = name.strip()
    return out


def write_keyword_letters(folder: Path, names: list[str]) -> None:
    (folder / KEYWORDS_FILE).write_text("".join(f"{i} {n}\n" for i, n in enumerate(names)), "utf-8")


def parse_maildir_info(info: str, letters: dict[str, str]) -> tuple[tuple[str, ...], bool]:
    """(keywords, deleted) of a file's info flags (the part after ``:2,``)."""
    kws: list[str] = []
    for c in info:
        if c in MAILDIR_FLAGS:
            kws.append(MAILDIR_FLAGS[c])
        elif c in letters:
            kws.append(letters[c])
    return tuple(dict.fromkeys(kws)), MAILDIR_DELETED in info


# -- mbox (mboxrd) -------------------------------------------------------------------------------------------

_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_UNTERMINATED = b"X-Janus-Unterminated: yes\n"


def from_line(received_at: int) -> bytes:
    return b"From MAILER-DAEMON " + time.asctime(time.gmtime(received_at)).encode("ascii") + b"\n"


def mbox_entry(raw: bytes, keywords: list[str], deleted: bool, received_at: int) -> bytes:
    """One message as the export writes it into an mbox file (see the module docstring)."""
    keys = {k.lower() for k in keywords}
    status = "RO" if "$seen" in keys else "O"
    x_status = "".join(c for c, kw in X_STATUS.items() if kw in keys) + (X_STATUS_DELETED if deleted else "")
    others = " ".join(k for k in keywords if k.lower() not in SYSTEM)
    block = f"Status: {status}\nX-Status: {x_status}\nX-Keywords: {others}\n".encode()
    body = _QUOTE.sub(rb">\1", raw)
    if not raw.endswith(b"\n"):
        block += _UNTERMINATED
        body += b"\n"
    return from_line(received_at) + block + body + b"\n"


def parse_mbox_entry(data: bytes) -> tuple[bytes, tuple[str, ...], bool] | None:
    """(original bytes, keywords, deleted) of an entry's content (after its ``From `` line, without the blank
    line that ends it), or None when it does not start with the export's header block."""
    lines = data.split(b"\n", 3)
    if len(lines) < 4 or not (lines[0].startswith(b"Status: ") and lines[1].startswith(b"X-Status: ")
                              and lines[2].startswith(b"X-Keywords: ")):
        return None
    status = lines[0][8:].decode("latin-1")
    x_status = lines[1][10:].decode("latin-1")
    kws = [kw for c, kw in X_STATUS.items() if c in x_status]
    if "R" in status:
        kws.insert(0, "$seen")
    kws += lines[2][12:].decode("utf-8", errors="replace").split()
    rest = lines[3]
    unterminated = rest.startswith(_UNTERMINATED)
    if unterminated:
        rest = rest[len(_UNTERMINATED):]
    raw = _UNQUOTE.sub(rb"\1", rest)
    if unterminated and raw.endswith(b"\n"):
        raw = raw[:-1]
    return raw, tuple(dict.fromkeys(kws)), X_STATUS_DELETED in x_status
