"""The `zse` command group: every command's module imports, and a command whose module does not import fails
loudly (its traceback names the missing module) instead of turning into "No such command"."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from zse.workflows import cli

# A command module that imports a zse module that does not exist: what a broken import inside zse looks like.
BROKEN_SRC = textwrap.dedent('''
    import click

    import zse.no_such_module  # noqa: F401

    @click.command()
    def broken() -> None:
        """Never reached."""
''')


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_module_imports(name: str) -> None:
    module_name, attr = cli.COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module_name), attr)
    assert isinstance(command, click.Command), f"{cli.COMMANDS[name]} is {type(command).__name__}, not a click command"
    assert cli.cli.get_command(click.Context(cli.cli), name) is command


@pytest.fixture
def broken_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`zse_broken_cmd.py` (which imports the missing `zse.no_such_module`) on sys.path; its folder returned."""
    (tmp_path / "zse_broken_cmd.py").write_text(BROKEN_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "zse_broken_cmd", raising=False)
    return tmp_path


@pytest.mark.parametrize(("target", "missing"), [
    ("zse_broken_cmd:broken", "zse.no_such_module"),  # the command's module imports a missing zse module
    ("zse.workflows.no_such_command:cmd", "zse.workflows.no_such_command"),  # the command's module itself is missing
], ids=["imports-missing-zse-module", "module-missing"])
def test_command_whose_module_does_not_import_raises(target: str, missing: str, broken_module: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli.COMMANDS, "broken", target)
    with pytest.raises(ModuleNotFoundError) as info:
        cli.main(["broken"])
    assert info.value.name == missing
    with pytest.raises(ModuleNotFoundError):  # --help lists every command: the broken one is not left out quietly
        cli.main(["--help"])


def test_broken_command_prints_traceback_not_no_such_command(broken_module: Path) -> None:
    """Through a real interpreter: exit status 1, a traceback naming the missing module, no "No such command"."""
    code = ("import sys; from zse.workflows import cli; "
            "cli.COMMANDS['broken'] = 'zse_broken_cmd:broken'; cli.main(sys.argv[1:])")
    path = os.pathsep.join(p for p in (str(broken_module), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code, "broken"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr
    assert "ModuleNotFoundError: No module named 'zse.no_such_module'" in proc.stderr, proc.stderr
    assert "No such command" not in proc.stderr


def test_unknown_command_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-command"])
    assert info.value.code == 2
    assert "No such command 'no-such-command'" in capsys.readouterr().err
