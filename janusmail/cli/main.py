"""The ``janusmail`` command line: accounts, import, the server, and the demo set-up used by ``make run``."""

from __future__ import annotations

import logging
import secrets
import sys
from pathlib import Path

import click

from janusmail import config as configmod
from janusmail.cli.check import check as check_cmd
from janusmail.cli.dkim import dkim as dkim_group
from janusmail.cli.quota import quota as quota_group
from janusmail.store.model import AlreadyExists


class Ctx:
    def __init__(self, data: Path, config_path: Path | None, db: str | None) -> None:
        self.data = data
        self.config_path = config_path
        self.db = db
        self._config: configmod.Config | None = None
        self._store = None

    @property
    def config(self) -> configmod.Config:
        if self._config is None:
            self._config = configmod.load(self.data, self.config_path)
            if self.db:
                self._config.db = self.db
        return self._config

    @property
    def store(self):  # noqa: ANN201 - lazy import keeps --help fast
        if self._store is None:
            from janusmail.store.store import Store

            self._store = Store.open(self.config.data_dir, self.config.db, blob_store=self.config.store.blob_store)
        return self._store

    def account(self, address: str):  # noqa: ANN201
        acct = self.store.accounts.by_address(address)
        if acct is None:
            raise click.ClickException(f"no such account: {address}")
        return acct


pass_ctx = click.make_pass_decorator(Ctx)


def _read_password(value: str | None, confirm: bool = True) -> str:
    if value == "-":
        pw = sys.stdin.readline().rstrip("\r\n")
    elif value is None:
        pw = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    else:
        pw = value
    if not pw:
        raise click.ClickException("the password must not be empty")
    return pw


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", type=click.Path(path_type=Path), default=Path("./var"), show_default=True,
              envvar="JANUSMAIL_DATA", help="Data directory (SQLite store, blobs, keys, config).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML config file [default: DATA/janusmail.toml].")
@click.option("--db", default=None, envvar="JANUSMAIL_DB",
              help="Database URL (postgresql://...); default: SQLite under the data directory.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, data: Path, config_path: Path | None, db: str | None, verbose: bool) -> None:
    """Janus Mail: one mailstore served over IMAP4rev2 and JMAP, with RFC 9698 JMAPACCESS."""
    from janusmail.observability import logs

    logs.configure(logging.DEBUG if verbose else logging.INFO)  # (``serve --log-format`` may change the format)
    ctx.obj = Ctx(data, config_path, db)


# -- users ---------------------------------------------------------------------------------------------------

@cli.group()
def user() -> None:
    """Manage accounts."""


@user.command("add")
@click.argument("address")
@click.option("--password", default=None, help="The password, or - to read it from stdin (prompted if absent).")
@click.option("--admin", is_flag=True, help="May use the web admin (/admin on the JMAP listener).")
@pass_ctx
def user_add(c: Ctx, address: str, password: str | None, admin: bool) -> None:
    """Create an account (with INBOX, Drafts, Sent, Archive, Junk, Trash)."""
    from janusmail.auth.passwords import make_credentials

    pw_hash, scram = make_credentials(_read_password(password))
    try:
        acct = c.store.accounts.create(address, pw_hash, scram)
    except AlreadyExists:
        raise click.ClickException(f"account {address} already exists") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if admin:
        c.store.accounts.set_admin(acct.id, True)
    click.echo(f"created {acct.address} ({acct.id}){' as an administrator' if admin else ''}")


@user.command("list")
@pass_ctx
def user_list(c: Ctx) -> None:
    """List accounts."""
    for acct in c.store.accounts.summaries():
        flags = "".join(f"\t{name}" for name, on in (("admin", acct.is_admin), ("disabled", acct.disabled)) if on)
        click.echo(f"{acct.address}\t{acct.id}\tjmap={'on' if acct.jmap_enabled else 'off'}{flags}")


@user.command("admin")
@click.argument("address")
@click.option("--on/--off", "on", required=True, help="Grant or withdraw the web admin.")
@pass_ctx
def user_admin(c: Ctx, address: str, on: bool) -> None:
    """Grant or withdraw administrator rights (the web admin at /admin); takes effect at the next page."""
    acct = c.account(address)
    c.store.accounts.set_admin(acct.id, on)
    click.echo(f"{acct.address} is {'now' if on else 'no longer'} an administrator")


@user.command("disable")
@click.argument("address")
@pass_ctx
def user_disable(c: Ctx, address: str) -> None:
    """Refuse every login of an account (its sessions end at their next command; the mail stays)."""
    acct = c.account(address)
    c.store.accounts.set_disabled(acct.id, True)
    click.echo(f"disabled {acct.address}")


@user.command("enable")
@click.argument("address")
@pass_ctx
def user_enable(c: Ctx, address: str) -> None:
    """Accept logins of a disabled account again."""
    acct = c.account(address)
    c.store.accounts.set_disabled(acct.id, False)
    click.echo(f"enabled {acct.address}")


@user.command("passwd")
@click.argument("address")
@click.option("--password", default=None, help="The new password, or - to read it from stdin.")
@pass_ctx
def user_passwd(c: Ctx, address: str, password: str | None) -> None:
    """Change an account's password (sessions logged in with the old one end at their next command)."""
    from janusmail.auth.passwords import make_credentials

    acct = c.account(address)
    pw_hash, scram = make_credentials(_read_password(password))
    c.store.credentials.set_password(acct.id, pw_hash, scram)
    click.echo(f"password changed for {acct.address}")


@user.command("delete")
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def user_delete(c: Ctx, address: str, yes: bool) -> None:
    """Delete an account and all of its mail."""
    acct = c.account(address)
    if not yes:
        click.confirm(f"Delete {acct.address} and all of its mail?", abort=True)
    c.store.accounts.delete(acct.id)
    click.echo(f"deleted {acct.address}")


# -- app passwords and tokens --------------------------------------------------------------------------------

@cli.group("app-password")
def app_password() -> None:
    """Named, revocable passwords limited to some protocols (imap, jmap, smtp)."""


@app_password.command("add")
@click.argument("address")
@click.option("--name", required=True, help="A name to recognise it by (e.g. the device).")
@click.option("--protocols", default="imap,jmap,smtp", show_default=True, help="Comma separated.")
@pass_ctx
def app_password_add(c: Ctx, address: str, name: str, protocols: str) -> None:
    """Create an app password; the generated password is printed alone on the last line."""
    from janusmail.auth import app_passwords

    acct = c.account(address)
    try:
        ap, secret = app_passwords.create(c.store, acct.id, name, protocols)
    except app_passwords.AppPasswordError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"app password {ap.name!r} ({ap.id}) for {acct.address}: {','.join(sorted(ap.protocols))}")
    click.echo(secret)


@app_password.command("list")
@click.argument("address")
@click.option("--all", "show_all", is_flag=True, help="Include revoked ones.")
@pass_ctx
def app_password_list(c: Ctx, address: str, show_all: bool) -> None:
    """List an account's app passwords (never the secrets)."""
    import time as _time

    from janusmail.auth import app_passwords

    acct = c.account(address)
    for ap in app_passwords.list_for(c.store, acct.id, include_revoked=show_all):
        used = _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(ap.last_used_at)) if ap.last_used_at else "never"
        state = "revoked" if ap.revoked_at else "active"
        click.echo(f"{ap.id}\t{ap.name}\t{','.join(sorted(ap.protocols))}\t{state}\tlast used {used}")


@app_password.command("revoke")
@click.argument("address")
@click.argument("name_or_id")
@pass_ctx
def app_password_revoke(c: Ctx, address: str, name_or_id: str) -> None:
    """Revoke an app password by name or id (takes effect at once: new and cached logins fail, and sessions
    logged in with it end at their next command, IDLE ones within seconds)."""
    from janusmail.auth import app_passwords

    acct = c.account(address)
    if not app_passwords.revoke(c.store, acct.id, name_or_id):
        raise click.ClickException(f"no active app password {name_or_id!r} for {acct.address}")
    click.echo(f"revoked {name_or_id}")


def _parse_ttl(value: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = value.strip().lower()
    try:
        if value[-1:] in units:
            return int(value[:-1]) * units[value[-1]]
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration like 3600, 90m, 1h or 7d") from None


@cli.group()
def token() -> None:
    """OAuth 2.0 bearer tokens from the built-in issuer: issue, list, revoke.

    Every token issued here is recorded in the store (its id, never the token), so it can be listed and
    revoked before it expires; a revoked token is refused by IMAP, JMAP and SMTP submission, and the
    sessions logged in with it end."""


@token.command("issue")
@click.argument("address")
@click.option("--scope", default="imap,jmap", show_default=True, help="Comma separated: imap, jmap, smtp.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: seconds or 90m, 1h, 7d.")
@click.option("--label", default="", help="What the token is for (shown by `token list` and the web admin).")
@pass_ctx
def token_issue(c: Ctx, address: str, scope: str, ttl: str, label: str) -> None:
    """Issue a signed access token; the token is printed alone on the last line."""
    from janusmail.auth.factory import build_token_service
    from janusmail.auth.tokens import issue_recorded

    acct = c.account(address)
    scopes = [s.strip() for s in scope.replace(" ", ",").split(",") if s.strip()]
    try:
        service = build_token_service(c.config)  # the data directory's issuer, whatever flags serve runs with
        minted = issue_recorded(c.store, service, acct.id, scopes, _parse_ttl(ttl), label=label)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"token {minted.jti} for {acct.address}, scope {' '.join(scopes)}, valid {ttl}, "
               f"issuer {service.issuer}")
    click.echo(minted.token)


@token.command("list")
@click.argument("address")
@click.option("--all", "show_all", is_flag=True, help="Include expired tokens (kept for a week).")
@pass_ctx
def token_list(c: Ctx, address: str, show_all: bool) -> None:
    """List an account's tokens, newest first: id, label, scope, expiry, state, last use (never the tokens)."""
    import time as _time

    def stamp(t: int | None) -> str:
        return _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(t)) if t else "never"

    acct = c.account(address)
    now = int(_time.time())
    for t in c.store.tokens.list(acct.id, include_expired=show_all, now=now):
        state = "revoked" if t.revoked else "expired" if t.expires_at <= now else "active"
        click.echo(f"{t.jti}\t{t.label or '-'}\t{','.join(sorted(t.scopes))}\texpires {stamp(t.expires_at)}\t"
                   f"{state}\tlast used {stamp(t.last_used_at)}")


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@pass_ctx
def token_revoke(c: Ctx, token_id: str) -> None:
    """Revoke the token with this id (from `token list` or `token issue`). Takes effect at once: every door
    refuses it, and sessions logged in with it end at their next command, IDLE ones within seconds."""
    from janusmail.store import writer_calls

    found = writer_calls.run(c.store, c.store.tokens.revoke, token_id.strip())
    if found is None:
        raise click.ClickException(f"no active token {token_id!r}")
    click.echo(f"revoked {found.jti}")


# -- aliases -------------------------------------------------------------------------------------------------

@cli.group()
def alias() -> None:
    """More addresses an account may send from (JMAP identities); each belongs to one account only."""


@alias.command("add")
@click.argument("address")
@click.argument("alias_address", metavar="ALIAS")
@pass_ctx
def alias_add(c: Ctx, address: str, alias_address: str) -> None:
    """Give ADDRESS's account the address ALIAS (not another account's address or alias)."""
    acct = c.account(address)
    try:
        added = c.store.identities.add_alias(acct.id, alias_address)
    except (AlreadyExists, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    value = alias_address.strip().lower()
    click.echo(f"{'added' if added else 'already an alias:'} {value} -> {acct.address}")


@alias.command("list")
@click.argument("address")
@pass_ctx
def alias_list(c: Ctx, address: str) -> None:
    """List an account's aliases, one a line."""
    for value in c.store.identities.aliases(c.account(address).id):
        click.echo(value)


@alias.command("remove")
@click.argument("address")
@click.argument("alias_address", metavar="ALIAS")
@pass_ctx
def alias_remove(c: Ctx, address: str, alias_address: str) -> None:
    """Take ALIAS away from ADDRESS's account, with the identities that send from it."""
    acct = c.account(address)
    if not c.store.identities.remove_alias(acct.id, alias_address):
        raise click.ClickException(f"{alias_address} is not an alias of {acct.address}")
    click.echo(f"removed {alias_address.strip().lower()} from {acct.address}")


# -- quotas (janusmail/cli/quota.py) -------------------------------------------------------------------------

cli.add_command(quota_group)

# -- DKIM keys (janusmail/cli/dkim.py) ------------------------------------------------------------------------

cli.add_command(dkim_group)

# -- the RFC 9698 / RFC 8474 conformance checker (janusmail/cli/check.py, janusmail/check/) ---------------------

cli.add_command(check_cmd)

# -- import --------------------------------------------------------------------------------------------------

@cli.command("import")
@click.argument("address")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--mailbox", default="INBOX", show_default=True, help="Target mailbox path (created if missing).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--allow-duplicates", is_flag=True,
              help="Import every message, even one whose exact bytes are already in its target mailbox.")
@pass_ctx
def import_cmd(c: Ctx, address: str, path: Path, mailbox: str, no_progress: bool, allow_duplicates: bool) -> None:
    """Import an mbox file or a Maildir (subfolders become mailboxes).

    Safe to run again: messages already in their target mailbox (same bytes) are skipped, so an interrupted
    import resumes. Exits non-zero when any message could not be imported.
    """
    from janusmail.cli.export_format import ExportFormatError
    from janusmail.cli.importer import ImportReport, import_path

    acct = c.account(address)
    report = ImportReport()
    interrupted = False
    try:
        import_path(c.store, acct.id, path, mailbox, show_progress=not no_progress,
                    allow_duplicates=allow_duplicates, report=report)
    except KeyboardInterrupt:
        interrupted = True
    except ExportFormatError as exc:  # a damaged export manifest: nothing was imported
        raise click.ClickException(str(exc)) from None
    except BaseException:
        _echo_import_report(report)  # what was done before it stopped (e.g. a full disk), then the error
        raise
    _echo_import_report(report)
    if interrupted:
        click.echo("interrupted: run the same command again to import the rest", err=True)
        raise SystemExit(130)
    if report.failed:
        raise SystemExit(1)


def _echo_import_report(report) -> None:  # noqa: ANN001 - janusmail.cli.importer.ImportReport
    click.echo(f"imported {report.imported} messages in {report.seconds:.2f} s ({report.rate:,.0f} messages/s)")
    for name in report.mailboxes_created:
        click.echo(f"created mailbox {name}")
    if report.failed:
        click.echo(f"{report.failed_count} messages failed:")
        for reason, n in report.failed.most_common():
            click.echo(f"  {n}\t{reason}")
        for origin, reason in report.failures:
            click.echo(f"  failed: {origin}: {reason}")
    click.echo(f"totals: imported {report.imported}, skipped {report.skipped} (already in the mailbox), "
               f"failed {report.failed_count}")


# -- export and migrate (janusmail/cli/export.py, janusmail/cli/migrate.py) ---------------------------------

@cli.command("export")
@click.argument("address")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["maildir", "mbox"]), default="maildir", show_default=True,
              help="Maildir++ (flags in file names, keywords in dovecot-keywords) or one mboxrd file per mailbox.")
@click.option("--mailbox", default=None, help="Export only this mailbox (IMAP path, e.g. Work/Projects) and the "
                                               "mailboxes under it [all].")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@pass_ctx
def export_cmd(c: Ctx, address: str, path: Path, fmt: str, mailbox: str | None, no_progress: bool) -> None:
    """Export an account's mail to PATH (a new or empty directory), byte-exact, with flags, keywords,
    internal dates, the folder tree and special-use roles; `janusmail import ADDRESS PATH` reads it back."""
    from janusmail.cli.export import ExportError, export_account

    acct = c.account(address)
    try:
        report = export_account(c.store, acct.id, acct.address, path, fmt, mailbox, show_progress=not no_progress)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the export: {exc.strerror or exc} ({exc.filename or path})"
                                   ) from None
    click.echo(f"exported {report.messages} messages ({report.octets:,} bytes) from {report.mailboxes} mailboxes "
               f"to {path} as {fmt} in {report.seconds:.2f} s ({report.rate:,.0f} messages/s)")


@cli.command("migrate")
@click.argument("address")
@click.option("--from-imap", "from_imap", required=True, metavar="HOST:PORT", help="The source IMAP server.")
@click.option("--from-user", "from_user", required=True, help="The login on the source server.")
@click.option("--password-file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file whose first line is the source password.")
@click.option("--tls", is_flag=True, help="Implicit TLS (IMAPS, usually port 993).")
@click.option("--starttls", is_flag=True, help="Plain connection upgraded with STARTTLS.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Trust this CA or self-signed certificate for --tls/--starttls [the system's CAs].")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Copy at most this many messages in this run (run again to go on).")
@click.option("--batch", "batch_size", type=click.IntRange(min=1, max=5000), default=200, show_default=True,
              help="Messages per UID FETCH and per store transaction.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@pass_ctx
def migrate_cmd(c: Ctx, address: str, from_imap: str, from_user: str, password_file: Path, tls: bool,
                starttls: bool, ca_file: str | None, limit: int | None, batch_size: int, no_progress: bool) -> None:
    """Copy every mailbox of another IMAP server's account into ADDRESS: bytes, flags, keywords, internal
    dates, the tree and special-use roles. Safe to stop and run again: it goes on where it stopped, and a later
    run copies only what is new. Exits non-zero when anything failed."""
    from janusmail.cli.imap_source import ImapSource, SourceError
    from janusmail.cli.migrate import MigrateReport, echo_report, migrate_account

    if tls and starttls:
        raise click.UsageError("--tls and --starttls exclude each other")
    try:
        host, port = configmod.parse_hostport(from_imap)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from-imap") from None
    try:
        lines = password_file.read_text("utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise click.ClickException(f"cannot read {password_file}: {exc.strerror or exc}") from None
    if not lines or not lines[0]:
        raise click.ClickException(f"{password_file} holds no password on its first line")
    acct = c.account(address)
    report = MigrateReport()
    try:
        source = ImapSource(host, port, from_user, lines[0], tls=tls, starttls=starttls, cafile=ca_file)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    status = 0
    try:
        migrate_account(c.store, acct.id, source, batch_size=batch_size, limit=limit,
                        show_progress=not no_progress, report=report)
    except KeyboardInterrupt:
        click.echo("interrupted: run the same command again to go on", err=True)
        status = 130
    except SourceError as exc:
        click.echo(f"Error: {exc}; run the same command again to go on", err=True)
        status = 1
    except BaseException:
        echo_report(report, source.key)  # what was copied before it stopped (e.g. a full disk), then the error
        raise
    finally:
        source.close()
    echo_report(report, source.key)
    if status:
        raise SystemExit(status)
    if report.failed:
        raise SystemExit(1)


# -- server --------------------------------------------------------------------------------------------------

@cli.command()
@click.option("--imap", "imap_addr", default=None, help="IMAP listener H:P [127.0.0.1:1143]; 'off' disables.")
@click.option("--imaps", "imaps_addr", default=None, help="Implicit-TLS IMAP listener H:P (off by default).")
@click.option("--jmap", "jmap_addr", default=None, help="JMAP HTTP listener H:P [127.0.0.1:8080]; 'off' disables.")
@click.option("--lmtp", "lmtp_addr", default=None, help="LMTP listener H:P [127.0.0.1:2424]; 'off' disables.")
@click.option("--submission", "submission_addr", default=None,
              help="SMTP submission listener H:P with STARTTLS (e.g. 0.0.0.0:587; off by default).")
@click.option("--submissions", "submissions_addr", default=None,
              help="SMTP submission listener H:P with implicit TLS (e.g. 0.0.0.0:465; off by default).")
@click.option("--public-url", default=None,
              help="Public base URL of JMAP, advertised by JMAPACCESS [derived from --jmap: http://HOST:PORT].")
@click.option("--blob-store", type=click.Choice(["local", "database"]), default=None,
              help="Where new message bytes go: local pack files, or the database (several nodes on one "
                   "PostgreSQL) [config [store] blob_store, else local].")
@click.option("--workers", type=click.IntRange(min=1), default=None, envvar="JANUSMAIL_WORKERS",
              help="Worker processes sharing the listeners and the store [one per CPU]; 1 runs everything in "
                   "this one process.")
@click.option("--metrics", "metrics_addr", default=None, metavar="H:P",
              help="Serve Prometheus metrics at http://H:P/metrics (unauthenticated: keep it private) "
                   "[config [metrics] listen, else off]; 'off' disables.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None, envvar="JANUSMAIL_LOG_FORMAT",
              help="Log lines as text or one JSON object a line [config [log] format, else text]; -v adds "
                   "a line per IMAP command and JMAP request.")
@pass_ctx
def serve(c: Ctx, imap_addr: str | None, imaps_addr: str | None, jmap_addr: str | None, lmtp_addr: str | None,
          submission_addr: str | None, submissions_addr: str | None, public_url: str | None, blob_store: str | None,
          workers: int | None, metrics_addr: str | None, log_format: str | None) -> None:
    """Run the server in the foreground until SIGTERM/SIGINT."""
    from janusmail.observability import logs

    cfg = c.config
    if log_format:
        cfg.log.format = log_format
    try:  # first: importing the server logs already (at -v)
        logs.configure(logging.getLogger().getEffectiveLevel(), cfg.log.format)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    from janusmail.server import run
    from janusmail.workers import default_workers

    def pick(value: str | None, current: str | None) -> str | None:
        if value is None:
            return current
        return None if value.lower() == "off" else value

    cfg.imap.listen = pick(imap_addr, cfg.imap.listen)
    cfg.imap.imaps = pick(imaps_addr, cfg.imap.imaps)
    cfg.jmap.listen = pick(jmap_addr, cfg.jmap.listen)
    cfg.lmtp.listen = pick(lmtp_addr, cfg.lmtp.listen)
    cfg.submission.listen = pick(submission_addr, cfg.submission.listen)
    cfg.submission.listen_tls = pick(submissions_addr, cfg.submission.listen_tls)
    cfg.metrics.listen = pick(metrics_addr, cfg.metrics.listen)
    if public_url:
        cfg.public_url = public_url
    if blob_store:
        cfg.store.blob_store = blob_store
    try:
        cfg.check()
        for value in (cfg.imap.listen, cfg.imap.imaps, cfg.jmap.listen, cfg.lmtp.listen, cfg.submission.listen,
                      cfg.submission.listen_tls):
            if value:
                configmod.parse_hostport(value)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    def announce(bound: dict[str, tuple[str, int]]) -> None:
        for name, (host, port) in sorted(bound.items()):
            click.echo(f"{name}\t{host}:{port}", err=True)
        click.echo("ready", err=True)

    workers = workers or default_workers()
    if workers == 1:
        run(cfg, lambda rt: announce(rt.bound))
        return
    from janusmail.workers import supervisor

    try:
        status = supervisor.run(cfg, workers, announce)  # the workers' banner, printed once, by the supervisor
    except ValueError as exc:  # inconsistent auth settings, found before any worker starts
        raise click.ClickException(str(exc)) from None
    if status:
        raise SystemExit(status)


@cli.command()
@click.option("--address", default="demo@janus.test", show_default=True)
@pass_ctx
def demo(c: Ctx, address: str) -> None:
    """Create the demo account on first run (password kept in DATA/demo-password) and print how to connect."""
    from janusmail.auth.passwords import make_credentials

    pw_file = c.config.data_dir / "demo-password"
    acct = c.store.accounts.by_address(address)
    if acct is None:
        password = secrets.token_urlsafe(12)
        acct = c.store.accounts.create(address, *make_credentials(password))
        c.config.data_dir.mkdir(parents=True, exist_ok=True)
        pw_file.write_text(password + "\n")
        pw_file.chmod(0o600)
        _welcome(c, acct.id)
    password = pw_file.read_text().strip() if pw_file.exists() else "(set with: janusmail user passwd)"
    cfg = c.config
    click.echo("")
    click.echo("Janus Mail demo account")
    click.echo(f"  address:  {address}")
    click.echo(f"  password: {password}")
    click.echo(f"  IMAP:     {cfg.imap.listen} (plain; STARTTLS offered)  e.g. python3 -c \"import imaplib; "
               f"m=imaplib.IMAP4('127.0.0.1', {configmod.parse_hostport(cfg.imap.listen or '127.0.0.1:1143')[1]}); "
               f"print(m.login('{address}', '{password}'))\"")
    if cfg.session_url:
        click.echo(f"  JMAP:     {cfg.session_url}  e.g. curl -u {address}:{password} {cfg.session_url}")
    else:
        click.echo("  JMAP:     off")
    click.echo(f"  LMTP:     {cfg.lmtp.listen}")
    click.echo("")


def _welcome(c: Ctx, account_id: str) -> None:
    inbox = c.store.mailboxes.by_path(account_id, ["INBOX"])
    raw = (b"From: Janus Mail <postmaster@janus.test>\r\nTo: demo@janus.test\r\nSubject: Welcome to Janus Mail\r\n"
           b"Message-ID: <welcome@janus.test>\r\nDate: Fri, 27 Nov 2026 08:00:00 +0000\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
           b"This message is one email with one id, whether you read it over IMAP or JMAP.\r\n")
    if inbox:
        c.store.emails.ingest(account_id, raw, (inbox.id,))


#: Exit status when the mail store's disk refused a write (sysexits EX_TEMPFAIL: free space, run it again).
EXIT_STORAGE_UNAVAILABLE = 75


def main() -> None:
    from janusmail.store.model import StorageUnavailable

    try:
        cli(prog_name="janusmail")
    except StorageUnavailable as exc:  # disk full or I/O error: a clear message, not a traceback
        click.echo(f"Error: {exc}; nothing more was written. Free disk space and run the same command again "
                   "(an import skips what it already stored).", err=True)
        sys.exit(EXIT_STORAGE_UNAVAILABLE)


if __name__ == "__main__":
    main()
