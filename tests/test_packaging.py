"""The packages import from this repository under `zse.*`, and the dependency rules hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("module", "folder"), [
    ("zse.pipeline", "pipeline"), ("zse.models", "models"), ("zse.workflows", "workflows"), ("zse.deploy", "deploy"),
])
def test_packages_come_from_this_repo(module: str, folder: str) -> None:
    mod = __import__(module, fromlist=["_"])
    assert Path(mod.__file__).resolve().parent == REPO / folder


def test_generic_names_are_not_importable_as_top_level_from_elsewhere(tmp_path: Path) -> None:
    """`import pipeline` must not find our package: we never shadow other projects' top-level names."""
    code = "import importlib.util as u; print([n for n in ('pipeline','models','workflows','deploy') if u.find_spec(n) and 'work' in str(u.find_spec(n).origin)])"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


FORBIDDEN = {
    "pipeline": ("zse.models", "zse.workflows"),
    "models": ("zse.workflows",),
    # reading a slide never imports torch: the I/O subpackage stays off torch and the modules that use it
    "pipeline/io": ("torch", "zse.models", "zse.workflows", "zse.pipeline.block", "zse.pipeline.blend",
                    "zse.pipeline.infer", "zse.pipeline.run", "zse.pipeline.progress"),
}


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_import_contracts_hold(folder: str) -> None:
    """pipeline/ never imports models/ or workflows/; models/ never imports workflows/; pipeline/io/ never imports
    torch (static, over every module, function-level imports included).

    (import-linter cannot see packages mapped with setuptools' package-dir, so the rule is checked here.)
    """
    import ast

    bad = []
    for path in sorted((REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder]):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not bad, "\n".join(bad)


def test_cli_lists_every_command() -> None:
    from zse.workflows.cli import COMMANDS

    res = subprocess.run([sys.executable, "-m", "zse.workflows.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for name in COMMANDS:
        assert name in res.stdout


def test_every_package_folder_is_installed() -> None:
    """Each folder with an __init__.py under the mapped top-level folders is listed in pyproject's `packages`
    (setuptools installs only what is listed there: an unlisted subpackage works in an editable checkout and
    is missing from a wheel)."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    want = set()
    for top in ("pipeline", "models", "workflows", "deploy"):
        for init in (REPO / top).rglob("__init__.py"):
            want.add(".".join(["zse", *init.parent.relative_to(REPO).parts]))
    assert want - listed == set()
