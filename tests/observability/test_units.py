"""The observability pieces on their own: log formats, the per-task ids, the secret scrubber, label bounding,
the scrape-time store collector, and the failure kinds SASL reports."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from janusmail.auth import revocation
from janusmail.auth.sasl import Failure, OAuthBearer, Plain
from janusmail.auth.throttle import LoginRefused
from janusmail.auth.tokens import ExpiredToken, InvalidToken
from janusmail.config import Config
from janusmail.observability import logs
from janusmail.observability.collectors import StoreCollector
from janusmail.observability.metrics import Metrics, build_metrics, smtp_result
from janusmail.observability.prom import PrometheusMetrics


def _logger(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter(3) if fmt == "json" else logs.TextFormatter())
    handler.addFilter(logs.ContextFilter())
    handler.addFilter(logs.SecretScrubber())
    logger = logging.getLogger(f"test.observability.{fmt}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def test_json_lines_carry_context_fields_and_tracebacks() -> None:
    logger, out = _logger("json")

    async def connection() -> None:
        logs.bind(sid="imap-1", account="A1")
        logs.event(logger, logging.INFO, "imap.login", method="password", peer="127.0.0.1")
        try:
            raise ValueError("boom\nline two")
        except ValueError:
            logger.exception("failed %s", "here")

    asyncio.run(connection())
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "imap.login" and first["sid"] == "imap-1" and first["account"] == "A1"
    assert first["method"] == "password" and first["level"] == "info" and first["worker"] == 3
    assert second["msg"] == "failed here" and "ValueError: boom" in second["exc"] and second["sid"] == "imap-1"


def test_text_lines_show_fields_and_ids() -> None:
    logger, out = _logger("text")

    async def request() -> None:
        logs.bind(sid="jmap-9")
        logs.event(logger, logging.INFO, "auth.failure", kind="bad_credentials", user="a b@example.test")

    asyncio.run(request())
    line = out.getvalue().strip()
    assert line.endswith('auth.failure kind=bad_credentials user="a b@example.test" [sid=jmap-9]')


def test_each_task_has_its_own_ids() -> None:
    seen: dict[str, object] = {}

    async def conn(name: str, gate: asyncio.Event) -> None:
        logs.bind(sid=name)
        await gate.wait()
        seen[name] = logs.context().get("sid")

    async def main() -> None:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(conn(n, gate)) for n in ("imap-a", "imap-b")]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)
        seen["main"] = logs.context().get("sid")

    asyncio.run(main())
    assert seen == {"imap-a": "imap-a", "imap-b": "imap-b", "main": None}


@pytest.mark.parametrize("message, secret", [
    ("('127.0.0.1', 4) >> b'AUTH PLAIN AGFAYgBzM2NyZXQ='", "AGFAYgBzM2NyZXQ="),
    ("a1 authenticate xoauth2 dXNlcj1hQGIBYXV0aD1CZWFyZXIgeHl6AQE=", "dXNlcj1hQGIBYXV0aD1CZWFyZXIgeHl6AQE="),
    ("headers: {'authorization': 'Bearer eyJhbGciOi.eyJzdWIi.sig-_x'}", "eyJhbGciOi.eyJzdWIi.sig-_x"),
    ("Authorization: Basic YTpiOmM=", "YTpiOmM="),
])  # fmt: skip
def test_the_scrubber_blanks_credentials(message: str, secret: str) -> None:
    logger, out = _logger("text")
    logger.info("%s", message)
    assert secret not in out.getvalue() and "[redacted]" in out.getvalue()


def test_labels_stay_bounded_and_series_exist_from_the_start() -> None:
    metrics = PrometheusMetrics()
    metrics.auth_failure("imap", "something new")
    metrics.session_revoked("imap", revocation.APP_PASSWORD_REVOKED)
    metrics.session_revoked("jmap", "a reason nobody listed")
    metrics.imap_command("FETCH", "OK", 0.002)
    metrics.imap_command("IDLE", "OK", None)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(generate_latest(metrics.registry).decode()) for s in f.samples}
    assert samples[("janusmail_auth_failures_total", (("door", "imap"), ("kind", "bad_credentials")))] == 1
    assert samples[("janusmail_auth_failures_total", (("door", "submission"), ("kind", "throttled")))] == 0
    assert samples[("janusmail_sessions_revoked_total", (("door", "imap"), ("reason", "app_password_revoked")))] == 1
    assert samples[("janusmail_sessions_revoked_total", (("door", "jmap"), ("reason", "other")))] == 1
    assert samples[("janusmail_imap_commands_total", (("command", "FETCH"), ("result", "ok")))] == 1
    assert samples[("janusmail_imap_command_duration_seconds_count", (("command", "FETCH"),))] == 1
    assert samples[("janusmail_imap_command_duration_seconds_count", (("command", "IDLE"),))] == 0
    assert not any(name.endswith("_created") for name, _ in samples)


def test_metrics_are_off_unless_asked_for() -> None:
    assert type(build_metrics(Config(), worker=False)) is Metrics
    assert [smtp_result(r) for r in ("250 ok", "452 full", "550 no")] == ["accepted", "deferred", "refused"]


class _Store:
    def __init__(self) -> None:
        self.reads = 0
        self.fail = False
        self.quotas = SimpleNamespace(totals=self._totals)
        self.submissions = SimpleNamespace(queue_depth=lambda: {"pending": 2, "held": 1})
        self.push_subscriptions = SimpleNamespace(count_deliverable=lambda: 4)

    def _totals(self) -> SimpleNamespace:
        self.reads += 1
        if self.fail:
            raise RuntimeError("database is locked")
        return SimpleNamespace(accounts=3, messages=10 * self.reads, storage=1000)


def test_store_numbers_are_reused_for_a_while_and_survive_a_failed_read() -> None:
    store, now = _Store(), [0.0]
    collector = StoreCollector(store, ttl=5.0, clock=lambda: now[0])  # type: ignore[arg-type]

    def values() -> dict[tuple[str, tuple], float]:
        return {(s.name, tuple(s.labels.items())): s.value for f in collector.collect() for s in f.samples}

    assert values()[("janusmail_store_messages", ())] == 10
    now[0] = 4.0
    assert values()[("janusmail_store_messages", ())] == 10 and store.reads == 1
    now[0] = 5.0
    assert values()[("janusmail_store_messages", ())] == 20
    store.fail, now[0] = True, 10.0
    got = values()
    assert got[("janusmail_store_messages", ())] == 20  # the last numbers, not a failed scrape
    assert got[("janusmail_outbound_queue_depth", (("state", "held"),))] == 1
    assert got[("janusmail_push_subscriptions", ())] == 4


class _Auth:
    """Just enough authenticator for the mechanisms' failure paths."""

    tokens = None

    def __init__(self, error: Exception | None = None, refusal: LoginRefused | None = None) -> None:
        self.error, self.refusal = error, refusal

    def check_bearer(self, token: str, protocol: str) -> None:
        raise self.error  # type: ignore[misc]

    def verify_password(self, *args: object, **kwargs: object) -> None:
        if self.refusal is not None:
            raise self.refusal
        return None


@pytest.mark.parametrize("auth, message, kind", [
    (_Auth(), b"\0ann@example.test\0wrong", "bad_credentials"),
    (_Auth(), b"only-one-part", "malformed"),
    (_Auth(), b"bob@example.test\0ann@example.test\0pw", "authz_denied"),
    (_Auth(refusal=LoginRefused("throttled", 5)), b"\0ann@example.test\0pw", "throttled"),
])  # fmt: skip
def test_plain_failure_kinds(auth: _Auth, message: bytes, kind: str) -> None:
    step = Plain(auth, "imap").start(message)  # type: ignore[arg-type]
    assert isinstance(step, Failure) and step.kind == kind


@pytest.mark.parametrize("error, kind", [(ExpiredToken("token expired"), "token_expired"),
                                         (InvalidToken("malformed token"), "token_invalid")])
def test_bearer_failure_kinds(error: Exception, kind: str) -> None:
    mech = OAuthBearer(_Auth(error), "imap")  # type: ignore[arg-type]
    mech.start(b"n,a=ann@example.test,\x01auth=Bearer abc.def\x01\x01")  # the error challenge
    step = mech.step(b"\x01")
    assert isinstance(step, Failure) and step.kind == kind
