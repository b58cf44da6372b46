"""``janusmail check``: is an IMAP server's RFC 9698 JMAPACCESS (and the RFC 8474 ids behind it) true?

Only click is imported here, so ``janusmail --help`` stays fast; the checker (janusmail/check/) and its
libraries (imapclient, httpx, rich) load when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

#: Exit statuses (documented in --help and the README).
EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class CheckError(click.ClickException):
    """Could not check at all (usage, unreachable server, TLS, refused login): a message and exit status 2."""

    exit_code = EXIT_ERROR


def _read_secret(path: Path, what: str) -> str:
    try:
        if str(path) == "-":
            line = sys.stdin.readline()
        else:
            text = path.read_text("utf-8")
            line = text.splitlines()[0] if text else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckError(f"cannot read the {what} from {path}: {getattr(exc, 'strerror', None) or exc}") from None
    secret = line.rstrip("\r\n")
    if not secret:
        raise CheckError(f"{path} holds no {what} on its first line")
    return secret


@click.command("check")
@click.option("--imap", "imap_addr", required=True, metavar="HOST:PORT", help="The IMAP server to check.")
@click.option("--user", required=True, help="The login name (the same for IMAP and JMAP).")
@click.option("--password-file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None,
              help="A file whose first line is the password (- for stdin); JMAP gets it as HTTP Basic.")
@click.option("--token-file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=None,
              help="A file whose first line is an OAuth bearer token (- for stdin): IMAP AUTHENTICATE "
                   "OAUTHBEARER (or XOAUTH2), JMAP Authorization: Bearer.")
@click.option("--tls", is_flag=True, help="Implicit TLS (IMAPS, usually port 993).")
@click.option("--starttls", is_flag=True, help="Plain connection upgraded with STARTTLS.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Trust this CA or self-signed certificate, for IMAP and for JMAP over https [the system's].")
@click.option("--jmap", "jmap_url", metavar="URL", default=None,
              help="A JMAP session URL to compare IMAP with when the advertised one does not open (or none is "
                   "advertised); the advertised URL is judged either way.")
@click.option("--sample", type=click.IntRange(min=1), default=20, show_default=True,
              help="Messages compared per mailbox, spread from the first to the last.")
@click.option("--write", is_flag=True,
              help="Also change \\Flagged on one message through IMAP, see it in JMAP, change it back through "
                   "JMAP, see it in IMAP; the original flags are restored. Without it nothing is changed.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"ok": bool, "checks": [{"name": str, "ok": bool, "detail": str}, ...]}.')
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds to wait for the network, and for a change to show through the other door.")
@click.option("--no-progress", is_flag=True, help="No progress display while mailboxes are sampled.")
def check(imap_addr: str, user: str, password_file: Path | None, token_file: Path | None, tls: bool,
          starttls: bool, ca_file: str | None, jmap_url: str | None, sample: int, write: bool, as_json: bool,
          timeout: float, no_progress: bool) -> None:
    """Check that an IMAP server's JMAPACCESS (RFC 9698) and object ids (RFC 8474) hold, with one credential.

    Works against any server. RFC 9698: no JMAPACCESS before login or after a failed one (tried with a
    deliberately wrong secret on a second connection); after login JMAPACCESS with OBJECTID in every
    capability list; GETJMAPACCESS answers one untagged JMAPACCESS with a quoted URL, then OK, and BAD when
    given arguments; the URL opens a JMAP session for the same credential. Across the doors, on --sample
    messages per mailbox: MAILBOXID = Mailbox id, EMAILID = Email id, THREADID = threadId, flags = keywords,
    and the IMAP mailbox tree = the JMAP names. Read-only unless --write.

    \b
    Exit status:
      0  every check holds
      1  at least one check failed (the table or JSON says which, and why)
      2  could not check: bad usage, server unreachable, TLS failure, login refused
    """
    import logging

    from janusmail import config as configmod

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # -v shows each HTTP request; otherwise quiet
        logging.getLogger("httpx").setLevel(logging.WARNING)

    if (password_file is None) == (token_file is None):
        raise click.UsageError("give exactly one of --password-file and --token-file")
    if tls and starttls:
        raise click.UsageError("--tls and --starttls exclude each other")
    try:
        host, port = configmod.parse_hostport(imap_addr)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--imap") from None

    from janusmail.check.imap_io import ImapProbeError
    from janusmail.check.model import Credential
    from janusmail.check.runner import Options

    if token_file is not None:
        cred = Credential(user, _read_secret(token_file, "token"), "token")
    else:
        assert password_file is not None
        cred = Credential(user, _read_secret(password_file, "password"), "password")
    opts = Options(host, port, cred, "tls" if tls else "starttls" if starttls else "plain", ca_file, jmap_url,
                   sample, write, timeout)
    try:
        report = _run_with_progress(opts, show=not (no_progress or as_json))
    except ImapProbeError as exc:
        raise CheckError(str(exc)) from None
    if as_json:
        from janusmail.check.render import as_json as render_json

        click.echo(render_json(report))
    else:
        from rich.console import Console

        from janusmail.check.render import print_table

        print_table(report, Console(), f"janusmail check {imap_addr} as {user} ({cred.described})")
    raise SystemExit(EXIT_OK if report.ok else EXIT_FAILED)


def _run_with_progress(opts, show: bool):  # noqa: ANN001, ANN202 - janusmail.check.runner.Options -> Report
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from janusmail.check.runner import run

    err = Console(stderr=True)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True,
                  disable=not (show and err.is_terminal)) as bar:
        task = bar.add_task("checking JMAPACCESS", total=None)

        def progress(done: int, total: int, name: str, exists: int) -> None:
            bar.update(task, completed=done, total=total, description=f"sampled {name} ({exists:,} messages)")

        return run(opts, progress)
