"""`nerfprune.scene` stays light: no torch, nothing of nerfprune beyond errors / _native / config,
and never `from nerfprune import _native` (that runs the package root while it is half initialised)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SCENE = Path(__file__).resolve().parents[1] / "python" / "nerfprune" / "scene"
ALLOWED = ("nerfprune.scene", "nerfprune.errors", "nerfprune._native", "nerfprune.config")


def module_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import outside a function body (those run when the module is imported)."""
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                found.append((child.lineno, base))
                if base == "nerfprune":
                    found.extend((child.lineno, f"nerfprune.{a.name}") for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_scene_modules_import_only_scene_errors_native_config_and_no_torch() -> None:
    bad = []
    for path in sorted(SCENE.rglob("*.py")):
        for line, module in module_level_imports(path):
            if module.split(".")[0] in ("torch", "taichi", "taichi_kernels"):
                bad.append(f"{path.name}:{line}: imports {module}")
            elif module == "nerfprune" or (module.startswith("nerfprune.") and not module.startswith(ALLOWED)):
                bad.append(f"{path.name}:{line}: imports {module}")
    assert not bad, "\n".join(bad)


def test_importing_scene_loads_no_torch() -> None:
    """With the package root stubbed out (it may import the whole API), `nerfprune.scene` alone loads no torch."""
    code = (
        "import sys, types; root = types.ModuleType('nerfprune'); root.__path__ = [%r]; sys.modules['nerfprune'] = root\n"
        "import nerfprune.scene, nerfprune.scene.loading\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'taichi'))\n"
        "assert not heavy, heavy\n"
        "assert nerfprune.scene.load_scene('builtin').images.shape[0] > 0\n"
    ) % str(SCENE.parent)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
