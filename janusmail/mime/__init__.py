"""The MIME layer: every message is parsed once, at ingest, into a JSON-able cache.

IMAP (ENVELOPE, BODYSTRUCTURE, BODY[section]) and JMAP (Email properties, bodyValues, blobs)
are served from that cache plus byte slices of the stored message, never by parsing again.

Modules:
  parse      parse_message(raw) -> cache dict (the one entry point at ingest)
  structure  the byte-offset scanner (header blocks, multipart boundaries) behind it
  buffer     bytes-like input (a spool file's mmap, a memoryview) scanned in place, never copied
  transfer   decoded sizes of base64/quoted-printable bodies, a window at a time (bounded memory)
  envelope   IMAP ENVELOPE lists
  bodies     RFC 8621 §4.1.4 textBody/htmlBody/attachments
  headers    JMAP header forms (asText, asAddresses, ...), ALLOWED_FORMS, header lookup
  addresses  the address-list parser shared by IMAP and JMAP
  charsets   charset decoding, RFC 2047 words, tolerant base64
  params     Content-Type/Disposition parameters incl. RFC 2231
  content    part bytes/decoding/text, find_part, part_headers, truncate_value
  htmltext   HTML -> visible text (preview, search)
  subject    RFC 5256 base subject
  reports    which sent message an MDN or DSN answers (cache key ``report``, used by ingest only)
  compose    JMAP Email/set create -> RFC 5322 bytes

Cache shape (parse_message):
  size, headers [[name, raw value]], envelope [10 items], part (root part, see below),
  textBody/htmlBody/attachments [section], hasAttachment, preview (<= 256 chars),
  message_ids/in_reply_to/references [str], subject (decoded) | None, base_subject,
  sent_at (epoch) | None, sent_offset (minutes) | None, from/to/cc/bcc/reply_to/sender
  [{name, email}] | None (None = header absent), search_text, damaged (True only if the
  parser hit an internal error and stored a minimal fallback).

Part dict: section ("" for a multipart root, "1" for a single-part message's body, "1.2"...),
  type/subtype (lowercase; IMAP view: a multipart without usable boundary reads as text/plain,
  an encoded message/rfc822 as application/octet-stream, jmap.type keeps the header's), params [[k, v]] (raw; text parts always
  carry a charset), id, description, encoding (upper case), size (encoded octets), lines
  (text/* and message/rfc822), md5, disposition [type, params] | None, language [..] | None,
  location, header_start/header_end (= body_start)/body_end (byte offsets into the raw
  message), children [parts] for multipart, message {header_start, header_end, body_start,
  body_end, envelope, part} for message/rfc822|global, and jmap {partId, type, name, charset,
  disposition, cid, language, location, size (decoded)} with the RFC 8621 EmailBodyPart values.

IMAP slices: BODY[s] = raw[body_start:body_end]; BODY[s.MIME] = raw[header_start:header_end];
  BODY[s.HEADER]/BODY[s.TEXT] of a message/rfc822 part use part["message"] offsets; for the
  top level BODY[HEADER]/BODY[TEXT] use the root part's header/body offsets.
"""
