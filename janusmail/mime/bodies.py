"""RFC 8621 §4.1.4: which parts are the text body, the HTML body and the attachments.

This is the RFC's reference ``parseStructure`` algorithm, kept step for step (including its
quirk that inside multipart/alternative a text/plain part stops further parts going to the
HTML list of that branch, and vice versa), run over the cache's part tree. One fix: the RFC code
throws on an alternative nested inside such a branch; we send the orphaned part to attachments. It does not descend
into message/rfc822 parts: those are attachments.
"""

from __future__ import annotations


def _is_inline_media(t: str) -> bool:
    return t.startswith("image/") or t.startswith("audio/") or t.startswith("video/")


def _parse(
    parts: list[dict],
    multipart_type: str,
    in_alternative: bool,
    html_body: list[dict] | None,
    text_body: list[dict] | None,
    attachments: list[dict],
) -> None:
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1
    for i, part in enumerate(parts):
        j = part["jmap"]
        ptype = j["type"]
        is_multipart = "children" in part
        is_inline = (
            j["disposition"] != "attachment"
            and (ptype == "text/plain" or ptype == "text/html" or _is_inline_media(ptype))
            and (i == 0 or (multipart_type != "related" and (_is_inline_media(ptype) or not j["name"])))
        )
        if is_multipart:
            sub = ptype.split("/", 1)[1]
            _parse(
                part["children"],
                sub,
                in_alternative or sub == "alternative",
                html_body,
                text_body,
                attachments,
            )
        elif is_inline:
            if multipart_type == "alternative":
                # The RFC's code would dereference a null list here when an alternative is
                # nested in a branch that already chose the other flavour (it throws in JS);
                # such a part is shown by neither list, so it is an attachment.
                if ptype == "text/plain" and text_body is not None:
                    text_body.append(part)
                elif ptype == "text/html" and html_body is not None:
                    html_body.append(part)
                else:
                    attachments.append(part)
                continue
            elif in_alternative:
                if ptype == "text/plain":
                    html_body = None
                if ptype == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _is_inline_media(ptype):
                attachments.append(part)
        else:
            attachments.append(part)

    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        # Found HTML part only: the text list shows it too
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        # Found plain text part only: the HTML list shows it too
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])


def body_lists(root: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(textBody, htmlBody, attachments) as lists of part dicts, for a root part."""
    text_body: list[dict] = []
    html_body: list[dict] = []
    attachments: list[dict] = []
    _parse([root], "mixed", False, html_body, text_body, attachments)
    return text_body, html_body, attachments


def has_attachment(attachments: list[dict]) -> bool:
    """RFC 8621: true when some attachment is not marked Content-Disposition: inline."""
    return any(p["jmap"]["disposition"] != "inline" for p in attachments)
