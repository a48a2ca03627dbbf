"""The dependency direction of DESIGN.md: llm and storage never import app or each other."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("llm", {"app", "storage"}), ("storage", {"app", "llm"})],
)
def test_package_does_not_import(package: str, forbidden: set[str]) -> None:
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []


WEB_FRAMEWORKS = {"quart", "quart_trio", "quart_schema", "werkzeug", "hypercorn"}


def _module_path(module: str) -> Path | None:
    """The source file of an `app...` module (its package's `__init__.py` for a package)."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every module `path` (module `module`) imports, absolute; `from x import y` gives x and
    x.y (y may be a submodule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _framework_imports(module: str) -> list[str]:
    """Web-framework imports reached from `module` through `app` modules (and the packages
    that importing them initialises), as `importer: imported` lines."""
    seen: set[str] = set()
    todo = [module]
    offenders: list[str] = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        path = _module_path(name)
        if path is None:
            continue
        for imported in _imports(path, name):
            top = imported.split(".")[0]
            if top in WEB_FRAMEWORKS:
                offenders.append(f"{name}: {imported}")
            elif top == "app":
                todo.append(imported)
    return sorted(set(offenders))


SERVICE_MODULES = ["app.services"] + sorted(
    f"app.services.{p.stem}"
    for p in (ROOT / "app" / "services").glob("*.py")
    if p.stem != "__init__"
)


@pytest.mark.parametrize("module", [*SERVICE_MODULES, "app.error_info"])
def test_services_do_not_import_the_web_framework(module: str) -> None:
    """DESIGN.md: services never import Quart or werkzeug, directly or through app modules."""
    assert _framework_imports(module) == []


def test_the_framework_check_sees_an_indirect_import() -> None:
    """The check above can fail: the HTTP layer imports the framework, and a module importing
    the HTTP layer is reported through it."""
    assert "app.http_errors: quart" in _framework_imports("app.http_errors")
    assert "app.http_errors: werkzeug.exceptions" in _framework_imports("app.factory")


def _unbounded_shields(source: str) -> list[int]:
    """Lines of `CancelScope(shield=True)` calls without a deadline (a shield may only come
    with a bound: `move_on_after(..., shield=True)`, `shielded_save()`, or a deadline)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        keywords = {k.arg for k in node.keywords}
        if name == "CancelScope" and "shield" in keywords and "deadline" not in keywords:
            lines.append(node.lineno)
    return lines


def test_every_shielded_scope_in_the_app_is_bounded() -> None:
    offenders = [
        f"{path}:{line}"
        for path in sorted((ROOT / "app").rglob("*.py"))
        for line in _unbounded_shields(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert _unbounded_shields("with trio.CancelScope(shield=True):\n    pass\n") == [1]
