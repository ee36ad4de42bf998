"""The house rules that keep the package navigable, checked on the source tree.

- the package root is lazy: importing a light submodule loads neither torch nor the rest;
- no module under `python/nerfprune` imports the package root (`from nerfprune import X`);
- the library never imports `nerfprune.experiments` (only the root's lazy table and the CLI name it);
- the public API names are the documented objects (functions, not subpackages).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "nerfprune"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import statement in `path`; names is empty for `import x`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _fresh_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys; {code}; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["nerfprune", "nerfprune.errors", "nerfprune.config"])
def test_light_imports_do_not_load_torch(module):
    loaded = _fresh_modules(f"import {module}")
    assert "torch" not in loaded, f"import {module} loaded torch"
    assert not {m for m in loaded if m.startswith("nerfprune.") and m not in (module, "nerfprune._native")} - {
        "nerfprune.errors"}, f"import {module} loaded other nerfprune modules"


def test_scene_package_does_not_load_torch():
    loaded = _fresh_modules("import nerfprune.scene")
    assert "torch" not in loaded
    assert not any(m.startswith(("nerfprune.pruning", "nerfprune.field", "nerfprune.training")) for m in loaded)


def test_no_module_imports_the_package_root():
    offenders = [f"{p.relative_to(PACKAGE)}: from nerfprune import {', '.join(names)}"
                 for p in MODULES for module, names in _imports(p) if module == "nerfprune" and names]
    assert not offenders, offenders


def test_the_library_never_imports_experiments():
    library = [p for p in MODULES if "experiments" not in p.parts and p.name not in ("__init__.py", "cli.py")
               or (p.name == "__init__.py" and p.parent != PACKAGE)]
    offenders = [f"{p.relative_to(PACKAGE)} imports {module}" for p in library for module, _ in _imports(p)
                 if module.startswith("nerfprune.experiments")]
    assert not offenders, offenders


def test_public_names_are_the_documented_objects():
    import nerfprune
    import nerfprune.pruning.lottery  # noqa: F401  (importing the subpackages must not shadow the functions)
    import nerfprune.training  # noqa: F401
    import nerfprune.evaluation  # noqa: F401

    for name in ("load_scene", "train", "render", "evaluate", "prune", "study", "demo"):
        assert callable(getattr(nerfprune, name)) and not isinstance(getattr(nerfprune, name), type(sys)), name
    assert issubclass(nerfprune.ConfigError, nerfprune.NerfpruneError) if hasattr(nerfprune, "NerfpruneError") else True
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        nerfprune.nonsense  # noqa: B018
