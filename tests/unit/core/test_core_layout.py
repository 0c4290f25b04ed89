"""The layout rule, enforced: a process package imports shared (kernel) packages only, never
another process package; a kernel module imports no process package; nothing but the tools and
the command's entry point imports the tools (benchmarks, demo, supervisor)."""

from __future__ import annotations

import ast
from pathlib import Path

import sampan

SRC = Path(sampan.__file__).parent
PROCESS_PACKAGES = frozenset(
    {
        "matcher",
        "router",
        "hkex_sim",
        "omd_ingest",
        "dropcopy",
        "ledger_sink",
        "ui_bridge",
        "analytics",
        "risk",
    }
)
TOOLS = "tools"
ENTRY_POINTS = frozenset({"cli"})  # `sampan.cli` names every command's module as a string


def top_of(module: str) -> str:
    """`sampan.matcher.agent` -> `matcher`; `sampan.config` -> `config`."""
    parts = module.split(".")
    assert parts[0] == "sampan", module
    return parts[1] if len(parts) > 1 else ""


def imported_modules(src: Path, path: Path) -> list[tuple[int, str]]:
    """Every `sampan` module `path` imports, at any depth (function-local imports included)."""
    module = ".".join(path.relative_to(src.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from sampan import matcher` imports a package by name.
            if target == "sampan":
                found.extend((node.lineno, f"sampan.{alias.name}") for alias in node.names)
    return sorted(
        (line, name) for line, name in found if name == "sampan" or name.startswith("sampan.")
    )


def breaches(src: Path) -> list[str]:
    found: list[str] = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        source = rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem
        if source == "__init__" or source in ENTRY_POINTS or source == TOOLS:
            continue
        for line, name in imported_modules(src, path):
            target = top_of(name)
            if not target or target == source:
                continue
            where = f"src/sampan/{rel}:{line} imports {name}"
            if target == TOOLS:
                found.append(f"{where}: only tools and the entry point may import tools")
            elif target in PROCESS_PACKAGES and source in PROCESS_PACKAGES:
                found.append(f"{where}: process package {source} imports process package {target}")
            elif target in PROCESS_PACKAGES:
                found.append(f"{where}: kernel module {source} imports process package {target}")
    return found


def test_no_package_breaks_the_layout_rule() -> None:
    found = breaches(SRC)
    assert not found, "layout rule broken:\n" + "\n".join(found)


def test_the_checker_names_each_kind_of_breach(tmp_path: Path) -> None:
    # The rule test must be able to fail: a made-up tree with one breach of each kind, found
    # at any depth and through relative imports, and one allowed import of each kind.
    src = tmp_path / "sampan"
    files = {
        "router/x.py": (
            "from sampan.hkex_sim.ocg_ids import trading_day\n"
            "from sampan.market import calendar\n"
            "def f() -> None:\n"
            "    from sampan.tools import demo\n"
            "from ..ledger_sink import rules\n"
        ),
        "streams/y.py": "import sampan.router.core\nfrom sampan.streams import z\n",
        "tools/demo.py": "from sampan.router import core\n",
        "cli.py": "import sampan.tools.demo\n",
    }
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    assert breaches(src) == [
        "src/sampan/router/x.py:1 imports sampan.hkex_sim.ocg_ids: "
        "process package router imports process package hkex_sim",
        "src/sampan/router/x.py:4 imports sampan.tools: only tools and the entry point may "
        "import tools",
        "src/sampan/router/x.py:5 imports sampan.ledger_sink: "
        "process package router imports process package ledger_sink",
        "src/sampan/streams/y.py:1 imports sampan.router.core: "
        "kernel module streams imports process package router",
    ]


def test_every_process_package_exists_or_is_still_to_come() -> None:
    present = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert PROCESS_PACKAGES - present <= {"analytics"}


def test_only_the_catalog_creates_topics() -> None:
    creators = [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*.py"))
        if "create_topics(" in path.read_text() or "NewTopic(" in path.read_text()
    ]
    assert creators == ["topics_cli.py"], f"topics created outside the catalog: {creators}"


def test_tests_import_no_demo_code() -> None:
    # Tests of the demo itself live under tests/*/tools; every other test builds and reads its
    # records with `sampan.tools.records`, so changing the demo cannot change what they test.
    tests = SRC.parent.parent / "tests"
    found = []
    for path in sorted(tests.rglob("*.py")):
        if "tools" in path.relative_to(tests).parts[:2]:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "sampan.tools.demo"
            ):
                found.append(f"{path.relative_to(tests)}:{node.lineno} imports {node.module}")
    assert not found, "tests import demo code:\n" + "\n".join(found)
