"""``janusmail dkim``: the DKIM keys that sign outbound mail (janusmail/smtp/dkimsign.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.cli.main import Ctx


@click.group()
def dkim() -> None:
    """DKIM keys: one RSA 2048 key per sending domain, in DATA/dkim/DOMAIN.SELECTOR.pem."""


@dkim.command("show")
@click.argument("domain")
@click.option("--selector", default=None,
              help="The DKIM selector [default: [outbound] dkim_selector, \"janus\" unless configured].")
@click.pass_obj
def dkim_show(c: Ctx, domain: str, selector: str | None) -> None:
    """Print the DNS TXT record that publishes DOMAIN's DKIM key, creating the key if it is missing.

    Publish the line in DOMAIN's zone (the value is split into quoted strings of at most 255 characters, as
    DNS requires; a DNS provider's web form takes them joined). The server signs mail from DOMAIN with the
    same key, generated on the first message if this command was not run before.
    """
    from janusmail.smtp import dkimsign

    selector = selector or c.config.outbound.dkim_selector
    try:
        pem = dkimsign.ensure_key(c.config.data_dir, domain, selector)
        name, value = dkimsign.dns_record(pem, domain, selector)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(dkimsign.zone_line(name, value))
