"""The packages import one way. Each layer may import itself and the layers its rule names:

    models           -> (nothing of ours)
    worker.pipeline  -> models
    worker.service   -> worker.pipeline, models
    training         -> models, worker.pipeline
    app              -> worker.service, worker.pipeline
    worker           -> worker.service, worker.pipeline   (the Celery worker process: celery_app, tasks, flower)

No layer names `worker` (Celery loads its modules by name), and no module is excepted.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "training", "worker", "app")
RULES = {
    "models": set(),
    "worker.pipeline": {"models"},
    "worker.service": {"worker.pipeline", "models"},
    "training": {"models", "worker.pipeline"},
    "app": {"worker.service", "worker.pipeline"},
    "worker": {"worker.service", "worker.pipeline"},
}


def _layer(module: str) -> str:
    """The layer of a project module: `worker.pipeline` and `worker.service` are layers of their
    own; the rest of `worker` is the Celery worker process."""
    parts = module.split(".")
    if parts[0] == "worker" and len(parts) > 1 and parts[1] in ("pipeline", "service"):
        return ".".join(parts[:2])
    return parts[0]


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
                    found.add(node.module)  # and each name, which may be a module: `from pkg import mod`
                    found.update(f"{node.module}.{a.name}" for a in node.names)
            graph[module] = found
    return graph


def _allowed(module: str, target: str) -> bool:
    return target.split(".")[0] not in PACKAGES or _layer(target) in RULES[_layer(module)] | {_layer(module)}


def test_the_layers_are_the_ones_the_rules_name() -> None:
    layers = {_layer(m) for m in _imports()}
    assert layers == set(RULES)


def test_every_layer_imports_only_itself_and_what_its_rule_names() -> None:
    graph = _imports()
    assert len(graph) > 30  # the walk found the project
    wrong = [
        f"{module} ({_layer(module)}) imports {target}"
        for module, targets in graph.items()
        for target in targets
        if not _allowed(module, target)
    ]
    assert not wrong, wrong


def test_the_rules_refuse_the_crossings_the_split_removed() -> None:
    assert not _allowed("training.photos", "worker.service.settings")  # training built CoreSettings()
    assert not _allowed("worker.pipeline.encoded", "worker.service.store")  # the face record beside the store
    assert not _allowed("app.main", "worker.celery_app")  # the workers' app, built on import
    assert not _allowed("app.schemas", "models.latent_math")  # the API reaches past the wings
    assert _allowed("training.calibration", "worker.pipeline.composite")


@pytest.mark.parametrize(
    ("layer", "frameworks"),
    [
        ("worker.pipeline", {"fastapi", "starlette", "celery", "kombu", "redis", "pydantic_settings"}),
        ("worker.service", {"fastapi", "starlette"}),
    ],
)
def test_the_wings_know_no_web_framework_and_the_pipeline_no_queue_store_or_settings(
    layer: str, frameworks: set[str]
) -> None:
    wing = {m: t for m, t in _imports().items() if _layer(m) == layer}
    assert wing and not [m for m, t in wing.items() if {x.split(".")[0] for x in t} & frameworks]


def test_celery_is_known_only_to_the_celery_modules() -> None:
    """Of the service, only the Celery runner and its configuration import Celery; the API
    imports the runner, never the workers' app."""
    users = {m for m, t in _imports().items() if {x.split(".")[0] for x in t} & {"celery", "kombu"}}
    assert users == {"worker.service.celery_config"}


def test_importing_the_api_builds_nothing() -> None:
    """`app.main` builds its module-level `app` only when it is asked for (`uvicorn app.main:app`);
    an embedded API never builds the workers' Celery app (only `worker.celery_app` does)."""
    probe = "import sys, app.main; print('app' in vars(app.main), 'worker.celery_app' in sys.modules)"
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
