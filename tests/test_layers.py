"""The packages import one way: models <- worker.core <- worker (Celery) <- app; training -> worker.core, models."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "training", "worker", "app")


def _layer(module: str) -> str:
    """The layer a module belongs to: worker.core is its own, beneath the Celery side of worker."""
    return "worker.core" if module.startswith("worker.core") else module.split(".")[0]


def _imports() -> dict[str, set[str]]:
    """Every project module and the project modules it imports (top-level or anywhere in it)."""
    graph: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
            graph[module] = found
    return graph


ALLOWED = {
    "models": {"models"},
    "training": {"training", "models", "worker.core"},  # evaluate runs the service core on photos
    "worker.core": {"worker.core", "models"},
    "worker": {"worker", "worker.core", "models"},
    "app": {"app", "worker", "worker.core", "models"},
}


def test_every_package_imports_only_the_layers_beneath_it() -> None:
    graph = _imports()
    assert len(graph) > 30  # the walk found the project
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if target.split(".")[0] in PACKAGES and _layer(target) not in ALLOWED[_layer(module)]
    ]
    assert not wrong, wrong


# What training may use of the core: the way into the model (decode, detect, align, invert) and
# the way out to the photo (composite), as the service runs them, to align training photos and
# to calibrate and evaluate on whole photos; never the service's state (store, runner, jobs,
# editor, library, service).
PIPELINE = {"images", "faces", "yunet", "inversion", "engine", "latents", "composite", "errors", "settings"}


def test_training_uses_the_core_s_pipeline_not_its_service_state() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _imports().items()
        if _layer(module) == "training"
        for target in targets
        if target == "worker.core" or (target.startswith("worker.core.") and target.split(".")[2] not in PIPELINE)
    ]
    assert not wrong, wrong


@pytest.mark.parametrize("framework", ["fastapi", "starlette", "celery", "kombu"])
def test_the_core_knows_no_web_or_queue_framework(framework: str) -> None:
    core = {m: t for m, t in _imports().items() if _layer(m) == "worker.core"}
    assert core and not [m for m, t in core.items() if any(x.split(".")[0] == framework for x in t)]


def test_importing_the_api_builds_nothing() -> None:
    """`uvicorn --factory app.main:create_app` builds the app when it serves; an embedded API never
    builds a Celery app (only the workers' `worker.celery_app` does)."""
    probe = "import sys, app.main; print(hasattr(app.main, 'app'), 'worker.celery_app' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_no_import_cycle_between_modules() -> None:
    graph = _imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph.get(module, ()):
            target = target if target in graph else target.rsplit(".", 1)[0]  # `from pkg import name`
            if state.get(target) == 1:
                pytest.fail(" -> ".join([*path, module, target]))
            if target in graph and target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
