"""`janusmail check` against a Janus whose public URL points nowhere (an unused port): JMAPACCESS is advertised
with a URL no JMAP server answers at, and the checker says so; given the real JMAP URL with --jmap, everything
else is compared and holds, so the one failing check names the culprit."""

from __future__ import annotations

import pytest

from janusmail.check import rfc8474, rfc9698
from tests.check.util import check, secret_file, session_url, verdicts
from tests.cli.mailstate import seed
from tests.imap.e2e_util import serve, use_cheap_argon2
from tests.serverutil import free_port

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture
def server(tmp_path):  # noqa: ANN001, ANN201
    yield from serve(tmp_path, public_url=f"http://127.0.0.1:{free_port()}")


def test_public_url_that_points_nowhere(server, tmp_path):  # noqa: ANN001
    seed(server.store, server.account.id, inbox=5)
    nowhere = server.config.session_url
    assert nowhere != session_url(server)
    password = secret_file(tmp_path, server.password)

    result = check(server.imap_port, server.address, "--password-file", password, "--json")
    assert result.exit_code == 1
    got = verdicts(result)
    assert got[rfc9698.GETJMAPACCESS]["ok"] and nowhere in got[rfc9698.GETJMAPACCESS]["detail"]
    detail = got[rfc9698.SESSION]["detail"]
    assert not got[rfc9698.SESSION]["ok"]
    assert detail.startswith(f"JMAP session at {nowhere} did not answer: Connection refused")
    assert "points at a JMAP server that cannot be reached" in detail
    assert all(not got[name]["ok"] and "the advertised URL did not open" in got[name]["detail"]
               for name in rfc8474.CROSS_CHECKS)

    # The JMAP listener's own session (--jmap) opens, but names its API at the same public URL: nothing to
    # compare with, and the checker says where it tried.
    result = check(server.imap_port, server.address, "--password-file", password, "--json",
                   "--jmap", session_url(server))
    assert result.exit_code == 1
    got = verdicts(result)
    api = nowhere.replace("/.well-known/jmap", "/jmap/api")
    assert [name for name, c in got.items() if not c["ok"]] == [rfc9698.SESSION, *rfc8474.CROSS_CHECKS]
    assert f"JMAP API at {api} did not answer" in got[rfc8474.MAILBOX_IDS]["detail"]
