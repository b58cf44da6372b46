"""The process frame and the runtime (issue 9 item 5): a broken door import stops ``janusmail serve`` at start,
the authenticator is always built, a listener that cannot open closes the ones already open, and the runtime
module imports no door (which is what breaks the import cycle through both doors)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from janusmail import server
from janusmail.auth.authenticator import Authenticator
from janusmail.config import Config
from janusmail.runtime import Runtime
from janusmail.spool import Spooler, spooler_for

DOORS = ("janusmail.imap.server", "janusmail.jmap.http")


def quiet_config(tmp_path: Path, db_url: str | None) -> Config:
    """A config with every listener off: start_all opens nothing, but builds everything else. The data
    directory is the one of conftest's ``store`` fixture."""
    cfg = Config(data_dir=tmp_path / "data", db=db_url)
    cfg.imap.listen = cfg.imap.imaps = None
    cfg.jmap.listen = None
    cfg.lmtp.listen = None
    return cfg


@pytest.mark.parametrize("door", DOORS)
def test_a_door_that_cannot_be_imported_stops_the_frame_import(monkeypatch: pytest.MonkeyPatch, door: str) -> None:
    # ``None`` in sys.modules makes ``import door`` raise ImportError, as a broken module would.
    monkeypatch.setitem(sys.modules, door, None)
    monkeypatch.delitem(sys.modules, "janusmail.server")
    with pytest.raises(ImportError):
        importlib.import_module("janusmail.server")


@pytest.mark.parametrize("door", DOORS)
def test_janusmail_serve_fails_loudly_when_a_door_import_is_broken(tmp_path: Path, door: str) -> None:
    """The real CLI, with the IMAP door listening: before issue 9 this logged a warning and served on without
    the broken door (the subprocess would then run until the timeout, failing the test)."""
    script = (
        "import sys\n"
        f"sys.modules[{door!r}] = None\n"
        "from janusmail.cli.main import main\n"
        f"sys.argv = ['janusmail', '--data', {str(tmp_path / 'data')!r}, 'serve', '--imap', '127.0.0.1:0',"
        " '--jmap', 'off', '--lmtp', 'off']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr or "ModuleNotFoundError" in proc.stderr, proc.stderr
    assert door in proc.stderr


def test_the_runtime_module_imports_no_door() -> None:
    code = (
        "import sys, janusmail.runtime\n"
        "print(sorted(m for m in sys.modules if m.startswith(('janusmail.imap', 'janusmail.jmap', 'janusmail.server'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


async def test_start_all_builds_the_authenticator_and_the_spooler(tmp_path: Path, db_url: str | None,
                                                                  store: Any) -> None:
    cfg = quiet_config(tmp_path, db_url)
    rt = await server.start_all(cfg, store)
    try:
        assert isinstance(rt, Runtime)
        assert isinstance(rt.auth, Authenticator)
        assert rt.bound == {}
        assert isinstance(rt.spooler, Spooler) and rt.spooler is spooler_for(rt)
        assert rt.spooler.directory == cfg.data_dir / "tmp" and rt.spooler.directory.is_dir()
    finally:
        await server.stop_all(rt)


async def test_an_authenticator_that_cannot_be_built_stops_the_start(tmp_path: Path, db_url: str | None,
                                                                     store: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(config: Config, st: Any) -> Authenticator:
        raise ValueError("auth.external_issuer is set but auth.external_audience is not")

    monkeypatch.setattr(server, "build_authenticator", broken)
    with pytest.raises(ValueError, match="external_audience"):
        await server.start_all(quiet_config(tmp_path, db_url), store)


async def test_a_starter_that_fails_closes_the_listeners_already_open(tmp_path: Path, db_url: str | None,
                                                                      store: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []

    async def first(rt: Runtime) -> None:
        async def close() -> None:
            closed.append("first")

        rt.closers.append(close)

    async def second(rt: Runtime) -> None:
        raise OSError("address in use")

    monkeypatch.setattr(server, "STARTERS", [first, second])
    with pytest.raises(OSError, match="address in use"):
        await server.start_all(quiet_config(tmp_path, db_url), store)
    assert closed == ["first"]


def test_spooler_is_made_from_the_config_once(tmp_path: Path, db_url: str | None, store: Any) -> None:
    cfg = quiet_config(tmp_path, db_url)
    cfg.spool.threshold = 1234
    rt = Runtime(cfg, store, server.make_auth(cfg, store))
    try:
        assert rt.spooler.threshold == 1234
        assert rt.spooler is rt.spooler
    finally:
        rt.auth.close()
