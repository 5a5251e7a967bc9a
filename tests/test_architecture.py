"""The house rules of docs/architecture.md, checked on the source: one import root, imports only go down, no
circles, no private names across modules, small modules; and a built wheel holds `chatpulse` alone."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fixtures import ROOT

# Source folder of each installed package: the design card's folders are sub-packages of chatpulse.
PACKAGE_DIRS = {
    "chatpulse": ROOT / "chatpulse",
    "chatpulse.assets": ROOT / "assets",
    "chatpulse.pipelines": ROOT / "pipelines",
    "chatpulse.reports": ROOT / "reports",
    "chatpulse.expectations": ROOT / "expectations",
}
# Room of a module (longest matching prefix) and the rooms it may import from.
ROOMS = {
    "chatpulse": "base",
    "chatpulse.ingest": "ingest",
    "chatpulse.behaviour": "behaviour",
    "chatpulse.metrics": "metrics",
    "chatpulse.alerting": "alerting",
    "chatpulse.sample": "sample",
    "chatpulse.reports": "reports",
    "chatpulse.assets": "assets",
    "chatpulse.pipelines.resources": "resources",
    "chatpulse.pipelines": "pipelines",
}
ALLOWED = {
    "base": {"base"},
    "ingest": {"base", "ingest"},
    "behaviour": {"base", "behaviour"},
    "metrics": {"base", "behaviour", "metrics"},
    "alerting": {"base", "alerting"},
    "sample": {"base", "sample"},
    "reports": {"base", "behaviour", "metrics", "alerting", "reports"},
    "resources": {"base", "resources"},
    "assets": {"base", "ingest", "behaviour", "metrics", "alerting", "reports", "resources", "assets"},
    "pipelines": {
        "base",
        "ingest",
        "behaviour",
        "metrics",
        "alerting",
        "sample",
        "reports",
        "resources",
        "assets",
        "pipelines",
    },
}
MAX_LINES = 500
TOP_LEVEL_FOLDERS = ("assets", "pipelines", "reports", "expectations")


def _modules() -> dict[str, Path]:
    """Every installed module's dotted name and its source file."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            if relative.parts[0] in TOP_LEVEL_FOLDERS and package == "chatpulse":
                continue
            parts = [p for p in relative.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _room(module: str) -> str:
    return ROOMS[max((prefix for prefix in ROOMS if module == prefix or module.startswith(prefix + ".")), key=len)]


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import statement, at any depth (lazy imports count too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [alias.name for alias in node.names], node.lineno))
    return out


def _internal_edges() -> dict[str, set[str]]:
    """module -> the project modules it imports (`from package import module` resolves to the module)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names, _ in _imports(path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES] or [module]
            edges[name].update(t for t in targets if t in MODULES and t != name)
    return edges


def test_nothing_imports_a_bare_top_level_folder() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in [*MODULES.values(), *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
        for module, _, line in _imports(path)
        if module.split(".")[0] in TOP_LEVEL_FOLDERS
    ]
    assert bare == []


def test_test_modules_share_builders_through_fixtures_only() -> None:
    crossing = [
        f"{path.name}:{line} imports {module}"
        for path in (ROOT / "tests").glob("*.py")
        for module, _, line in _imports(path)
        if module.split(".")[0] in {"tests", "conftest"} or module.startswith("test_")
    ]
    assert crossing == []


def test_imports_only_go_down_between_rooms() -> None:
    upward = [
        f"{name} ({_room(name)}) imports {target} ({_room(target)})"
        for name, targets in _internal_edges().items()
        for target in sorted(targets)
        if _room(target) not in ALLOWED[_room(name)]
    ]
    assert upward == []


def test_the_core_never_imports_dagster() -> None:
    core = [name for name in MODULES if _room(name) not in {"assets", "pipelines", "resources"}]
    assert [n for n in core if any(m.split(".")[0] == "dagster" for m, _, _ in _imports(MODULES[n]))] == []


def test_no_import_cycles() -> None:
    edges = _internal_edges()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_private_name_is_imported_from_another_module() -> None:
    private = [
        f"{name}:{line} imports {module}.{n}"
        for name, path in MODULES.items()
        for module, names, line in _imports(path)
        if module in MODULES or module.split(".")[0] == "chatpulse"
        for n in names
        if n.startswith("_")
    ]
    assert private == []


def test_every_module_is_small_enough_to_read() -> None:
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


@pytest.mark.subprocess
def test_a_built_wheel_holds_chatpulse_alone(tmp_path: Path) -> None:
    """Built from the tracked files (as a clean clone has them), offline, with the installed setuptools."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout: cannot tell which files a clean clone has")
    source = tmp_path / "src"
    for name in tracked.stdout.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run([*command, "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("chatpulse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"chatpulse"}
    for shipped in (
        "chatpulse/assets/ingest.py",
        "chatpulse/pipelines/definitions.py",
        "chatpulse/reports/templates/report.html.j2",
        "chatpulse/expectations/requests.json",
        "chatpulse/alerting/alert_rules.yaml",
        "chatpulse/behaviour/scenario_rules.yaml",
        "chatpulse/behaviour/scenario_model.npz",
        "chatpulse/behaviour/scenario_corpus/zh.yaml",
        "chatpulse/metrics/prices.yaml",
    ):
        assert shipped in names
