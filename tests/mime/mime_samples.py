"""Sample messages for the MIME tests and the parse benchmark (written for these tests)."""

from __future__ import annotations


def crlf(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# RFC 8621 §4.1.4 example structure; each leaf's body is its letter so tests can find it.
RFC8621_EXAMPLE = crlf(
    """From: a@example.com
To: b@example.com
Subject: list footer example
Content-Type: multipart/mixed; boundary="m1"

--m1
Content-Type: text/plain
Content-Disposition: inline

A
--m1
Content-Type: multipart/mixed; boundary="m2"

--m2
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: multipart/mixed; boundary="m3"

--m3
Content-Type: text/plain
Content-Disposition: inline

B
--m3
Content-Type: image/jpeg
Content-Disposition: inline

C
--m3
Content-Type: text/plain
Content-Disposition: inline

D
--m3--
--alt
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html

E
--rel
Content-Type: image/jpeg

F
--rel--
--alt--
--m2
Content-Type: image/jpeg
Content-Disposition: attachment

G
--m2
Content-Type: application/x-excel

H
--m2
Content-Type: message/rfc822

J
--m2--
--m1
Content-Type: text/plain
Content-Disposition: inline

K
--m1--
"""
)

_PARA = (
    "Hi team, here are the notes from this week's planning meeting. We agreed to move the "
    "release to next Thursday, pending the results of the load tests. Ã©tÃ© was discussed. "
)


def typical_message() -> bytes:
    """About 5 KB: a relayed newsletter-ish mail with text and HTML alternatives."""
    text = (_PARA * 8).replace("Ã©tÃ©", "été")
    html = (
        "<html><head><style>p{color:red}</style></head><body>"
        + "".join(f"<p>{_PARA.replace('Ã©tÃ©', '&eacute;t&eacute;')}</p>" for _ in range(7))
        + "</body></html>"
    )
    import binascii

    tq = binascii.b2a_qp(crlf(text), istext=True).decode()
    hq = binascii.b2a_qp(crlf(html), istext=True).decode()
    msg = f"""Return-Path: <bounce-123@lists.example.org>
Delivered-To: alice@example.com
Received: from mx1.example.com (mx1.example.com [192.0.2.10])
\tby mail.example.com (Postfix) with ESMTPS id 4Q1x2y3z4
\tfor <alice@example.com>; Tue, 14 May 2024 09:12:33 +0200 (CEST)
Received: from out.lists.example.org (out.lists.example.org [198.51.100.7])
\tby mx1.example.com (Postfix) with ESMTPS id 1A2B3C
\tfor <alice@example.com>; Tue, 14 May 2024 09:12:31 +0200 (CEST)
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=lists.example.org; s=s1;
\th=from:to:subject:date:message-id:list-id:list-unsubscribe;
\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
\tb=Qm9ndXMgc2lnbmF0dXJlIGZvciB0ZXN0aW5nIG9ubHksIG5vdCBhIHJlYWwgREtJTSBzaWduYXR1cmUu
\t IEl0IGp1c3QgaGFzIHRvIGJlIGxvbmcgZW5vdWdoIHRvIGxvb2sgbGlrZSBvbmUu
From: =?utf-8?q?Bj=C3=B6rn_Example?= <bjorn@lists.example.org>
To: Alice Example <alice@example.com>, "Team, All" <team@example.com>
Cc: bob@example.com
Subject: Re: [team] =?utf-8?q?Planning_notes_f=C3=BCr?= next week
Date: Tue, 14 May 2024 09:12:30 +0200
Message-ID: <20240514071230.ABC123@lists.example.org>
In-Reply-To: <20240513.XYZ@example.com>
References: <20240512.QRS@example.com> <20240513.XYZ@example.com>
List-Id: Team list <team.lists.example.org>
List-Unsubscribe: <mailto:leave@lists.example.org>, <https://lists.example.org/leave>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1_5f3a"

--b1_5f3a
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

{tq}
--b1_5f3a
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

{hq}
--b1_5f3a--
"""
    return crlf(msg)
