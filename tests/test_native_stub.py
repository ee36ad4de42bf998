"""The hand-written `_native.pyi` must describe the built extension exactly.

mypy is not a dependency, so this is the check that the stub editors and type
checkers read does not drift from the FFI: the same public names (functions,
exception classes, constants), the same parameter names, kinds and defaults
(read from PyO3's `__text_signature__` through `inspect.signature`), and the
same exception bases. The second half proves the check notices each kind of
drift, on edited copies of the stub and of the module.
"""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path

import pytest

import nerfprune._native as native

STUB = Path(native.__file__).with_name("_native.pyi")

_KINDS = {
    "posonly": inspect.Parameter.POSITIONAL_ONLY,
    "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "vararg": inspect.Parameter.VAR_POSITIONAL,
    "kwonly": inspect.Parameter.KEYWORD_ONLY,
    "kwarg": inspect.Parameter.VAR_KEYWORD,
}
_NO_DEFAULT = inspect.Parameter.empty


def _stub_parameters(fn: ast.FunctionDef) -> list[tuple[str, inspect._ParameterKind, object]]:
    """(name, kind, default) of each parameter of a stub function, in order."""
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [_NO_DEFAULT] * (len(positional) - len(a.defaults)) + [ast.literal_eval(d) for d in a.defaults]
    out = [(p.arg, _KINDS["posonly" if p in a.posonlyargs else "args"], d) for p, d in zip(positional, defaults)]
    if a.vararg:
        out.append((a.vararg.arg, _KINDS["vararg"], _NO_DEFAULT))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, _KINDS["kwonly"], _NO_DEFAULT if d is None else ast.literal_eval(d)))
    if a.kwarg:
        out.append((a.kwarg.arg, _KINDS["kwarg"], _NO_DEFAULT))
    return out


def _is_type_alias(node: ast.AnnAssign) -> bool:
    return isinstance(node.annotation, ast.Name) and node.annotation.id == "TypeAlias"


def stub_mismatches(stub_source: str, module: types.ModuleType) -> list[str]:
    """Every way `stub_source` and `module` disagree, one readable line each (empty: they agree)."""
    tree = ast.parse(stub_source)
    functions: dict[str, ast.FunctionDef] = {}
    classes: dict[str, ast.ClassDef] = {}
    constants: set[str] = set()
    aliases: set[str] = set()
    problems: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            (aliases if _is_type_alias(node) else constants).add(node.target.id)
        elif isinstance(node, ast.Assign):
            problems.append(f"stub line {node.lineno}: annotate assignments (`X: int` or `X: TypeAlias = ...`)")
        elif not isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)):
            problems.append(f"stub line {node.lineno}: unexpected {type(node).__name__}")

    stub_names = set(functions) | set(classes) | constants
    runtime_names = {n for n in vars(module) if not (n.startswith("__") and n.endswith("__"))}
    for name in sorted(stub_names - runtime_names):
        problems.append(f"{name}: in the stub, not in the extension")
    for name in sorted(runtime_names - stub_names):
        problems.append(f"{name}: in the extension, not in the stub")
    for name in sorted(aliases & runtime_names):
        problems.append(f"{name}: a TypeAlias in the stub but a real name in the extension")
    exported = getattr(module, "__all__", None)
    if exported is not None and set(exported) != runtime_names:
        problems.append(f"__all__ disagrees with the module's names: {sorted(set(exported) ^ runtime_names)}")

    for name, fn in functions.items():
        obj = getattr(module, name, None)
        if obj is None:
            continue
        if isinstance(obj, type) or not callable(obj):
            problems.append(f"{name}: a function in the stub, a {type(obj).__name__} in the extension")
            continue
        try:
            runtime = [(p.name, p.kind, p.default) for p in inspect.signature(obj).parameters.values()]
        except ValueError:
            problems.append(f"{name}: the extension gives no signature to compare (no __text_signature__)")
            continue
        stub = _stub_parameters(fn)
        if runtime != stub:
            show = lambda ps: ", ".join(f"{n}{'' if d is _NO_DEFAULT else '=' + repr(d)} [{k.name}]" for n, k, d in ps)  # noqa: E731
            problems.append(f"{name}: stub ({show(stub)}) but extension ({show(runtime)})")

    for name, cls in classes.items():
        obj = getattr(module, name, None)
        if obj is None:
            continue
        if not isinstance(obj, type):
            problems.append(f"{name}: a class in the stub, a {type(obj).__name__} in the extension")
            continue
        stub_bases = [ast.unparse(b) for b in cls.bases]
        runtime_bases = [
            b.__name__ if b.__module__ == "builtins" or getattr(module, b.__name__, None) is b else f"{b.__module__}.{b.__name__}"
            for b in obj.__bases__
        ]
        if stub_bases != runtime_bases:
            problems.append(f"{name}: bases {stub_bases} in the stub, {runtime_bases} in the extension")

    for name in constants:
        if callable(getattr(module, name, None)):
            problems.append(f"{name}: a constant in the stub, callable in the extension")
    return problems


def test_the_stub_matches_the_extension_exactly():
    problems = stub_mismatches(STUB.read_text(), native)
    assert not problems, f"{STUB} disagrees with the built extension:\n" + "\n".join(problems)


def test_every_public_function_has_a_comparable_signature():
    functions = [n for n, o in vars(native).items() if callable(o) and not isinstance(o, type) and not n.startswith("__")]
    assert len(functions) >= 15
    for name in functions:
        assert getattr(native, name).__text_signature__ is not None, name


# --- the check notices each kind of drift ---------------------------------------------------


def _module_copy(**changes) -> types.ModuleType:
    """A stand-in for the extension with some names added, replaced or (value None) removed."""
    fake = types.ModuleType(native.__name__)
    fake.__dict__.update({k: v for k, v in vars(native).items() if k != "__all__"})
    for name, value in changes.items():
        if value is None:
            del fake.__dict__[name]
        else:
            setattr(fake, name, value)
    return fake


def _edited_stub(old: str, new: str) -> str:
    source = STUB.read_text()
    assert source.count(old) == 1, f"the stub no longer contains {old!r} exactly once"
    return source.replace(old, new)


def _new_function(x, y=2):
    return x + y


class _NewError(ValueError):
    pass


@pytest.mark.parametrize(
    "stub, module, expected",
    [
        pytest.param(STUB.read_text() + "\ndef extra(x: int) -> int: ...\n", native,
                     "extra: in the stub, not in the extension", id="name-added-to-stub"),
        pytest.param(STUB.read_text(), _module_copy(extra=_new_function),
                     "extra: in the extension, not in the stub", id="function-added-to-extension"),
        pytest.param(STUB.read_text(), _module_copy(ExtraError=_NewError),
                     "ExtraError: in the extension, not in the stub", id="exception-added-to-extension"),
        pytest.param(STUB.read_text(), _module_copy(fnv1a64=None),
                     "fnv1a64: in the stub, not in the extension", id="function-removed-from-extension"),
        pytest.param(_edited_stub("factor: int = 1)", "factor: int = 2)"), native,
                     "decode_images: stub (paths [POSITIONAL_OR_KEYWORD], factor=2", id="default-changed"),
        pytest.param(_edited_stub("def mask_overlap(a: BoolArray, b: BoolArray)", "def mask_overlap(a: BoolArray, c: BoolArray)"),
                     native, "mask_overlap: stub (a [POSITIONAL_OR_KEYWORD], c", id="parameter-renamed"),
        pytest.param(_edited_stub("    iteration: int,\n    *,\n", "    *,\n    iteration: int,\n"), native,
                     "ray_batch: stub (images [POSITIONAL_OR_KEYWORD], views [POSITIONAL_OR_KEYWORD], iteration [KEYWORD_ONLY]",
                     id="parameter-made-keyword-only"),
        pytest.param(_edited_stub("class MaskError(NerfpruneError):", "class MaskError(ValueError):"), native,
                     "MaskError: bases ['ValueError'] in the stub, ['NerfpruneError'] in the extension", id="base-changed"),
        pytest.param(STUB.read_text(), _module_copy(fingerprint=_NewError),
                     "fingerprint: a function in the stub, a type in the extension", id="function-became-class"),
    ],
)
def test_the_check_reports_drift(stub, module, expected):
    problems = stub_mismatches(stub, module)
    assert any(p.startswith(expected) for p in problems), problems
