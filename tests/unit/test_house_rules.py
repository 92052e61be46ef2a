"""Rules of the tree that a reviewer would otherwise have to remember (DESIGN §2, STYLE)."""

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import voiceagent

PACKAGE = Path(voiceagent.__file__).parent
TORCH_ALLOWED = ("model", "serving")


def _modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.walk_packages([str(PACKAGE)], prefix="voiceagent.")
        if m.name != "voiceagent.__main__"
    ]


def test_torch_is_imported_only_under_model_and_serving() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in TORCH_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "torch" or n.startswith("torch.") for n in names):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("name", _modules())
def test_public_all_is_complete(name: str) -> None:
    # Its order is ruff's job (RUF022); here: every exported name exists, none is listed twice.
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip("no __all__")
    assert len(set(exported)) == len(exported)
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


def test_importing_the_package_loads_no_model_runtime() -> None:
    # The CLI and API must start fast: heavy runtimes load only where a model is used.
    import subprocess
    import sys

    code = (
        "import sys, voiceagent.cli, voiceagent.config; "
        "heavy = ('onnxruntime', 'faster_whisper', 'ctranslate2', 'torch'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_data_file_in_the_package_ships_in_the_wheel() -> None:
    # An installed wheel (the container images) has only what package-data names: a template
    # or static asset outside it works from a checkout and fails in production.
    import tomllib

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["voiceagent"]
    shipped = {p for pattern in patterns for p in PACKAGE.glob(pattern) if p.is_file()}
    data = {
        p
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }
    assert data, "no data files found: the test looks in the wrong place"
    missing = sorted(str(p.relative_to(PACKAGE)) for p in data - shipped)
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
