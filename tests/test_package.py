"""The package installs as documented: import name, console command, module entry point, version."""

from __future__ import annotations

import subprocess
import sys

import hfm
from hfm.cli import main


def test_version_is_exposed() -> None:
    assert hfm.__version__.count(".") == 2


def test_unknown_public_attribute_raises() -> None:
    try:
        hfm.not_a_thing  # noqa: B018
    except AttributeError as err:
        assert "not_a_thing" in str(err)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_cli_help_lists_command_groups(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "backbones" in out


def test_python_dash_m_runs_the_same_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hfm", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert hfm.__version__ in proc.stdout
