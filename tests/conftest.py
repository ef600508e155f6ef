"""Shared fixtures: tiny generated CelebA-layout folders and tiny models."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.serve import start_server

if TYPE_CHECKING:
    import torch

CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Tests send many uploads from one client (the test client, or loopback), which the per-client share
# (app.middleware.FairShare) would rightly refuse: off for the session unless a test asks for it
# (tests/app/test_fairness.py, benchmarks/fairness.py; the page's test serves with the default on).
os.environ.setdefault("FACEEDIT_RATE_PER_S", "0")


def make_celeba(root: Path, n: int = 48, size: tuple[int, int] = (89, 109), identities: bool = True) -> Path:
    """A CelebA-layout folder of n synthetic faces: a skin ellipse, eyes, and a mouth that
    curves up when 'Smiling' and hair that is yellow when 'Blond_Hair'."""
    (root / "img_align_celeba").mkdir(parents=True)
    # one generator per image, so image i is the same face in folders of any size
    rngs = [np.random.default_rng(i) for i in range(n)]
    labels = np.stack([r.random(len(CELEBA_ATTRIBUTES)) < 0.5 for r in rngs])
    w, h = size
    sx, sy = w / 178, h / 218
    for i in range(n):
        im = Image.new("RGB", size, tuple(int(v) for v in rngs[i].integers(0, 255, 3)))
        d = ImageDraw.Draw(im)
        hair = (230, 200, 80) if labels[i, CELEBA_ATTRIBUTES.index("Blond_Hair")] else (60, 40, 30)
        d.ellipse([40 * sx, 40 * sy, 138 * sx, 120 * sy], fill=hair)
        d.ellipse([45 * sx, 60 * sy, 133 * sx, 190 * sy], fill=(220, 180, 150))
        for ex in (69, 108):
            d.ellipse([(ex - 6) * sx, 106 * sy, (ex + 6) * sx, 116 * sy], fill=(30, 30, 30))
        smile = labels[i, CELEBA_ATTRIBUTES.index("Smiling")]
        d.arc(
            [72 * sx, (140 if smile else 150) * sy, 106 * sx, 162 * sy],
            0 if smile else 180,
            180 if smile else 360,
            fill=(150, 30, 40),
            width=2,
        )
        im.save(root / "img_align_celeba" / f"{i + 1:06d}.jpg", quality=90)
    rows = [f"{i + 1:06d}.jpg " + " ".join("1" if v else "-1" for v in labels[i]) for i in range(n)]
    (root / "list_attr_celeba.txt").write_text(f"{n}\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg 0\n" for i in range(n)))
    if identities:
        (root / "identity_CelebA.txt").write_text("".join(f"{i + 1:06d}.jpg {i // 2}\n" for i in range(n)))
    return root


@pytest.fixture(scope="session")
def celeba_half(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("celeba_half"), size=(89, 109))


@pytest.fixture(scope="session")
def celeba_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("celeba_full"), n=24, size=(178, 218), identities=False)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none found): skipped visibly")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def calibrate_batchnorm(G: torch.nn.Module) -> None:
    """Running BatchNorm statistics from one batch, so a fresh G in eval mode is not ~constant."""
    import torch

    for m in G.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one batch sets the statistics
    with torch.no_grad():
        G.train()(torch.randn(64, G.cfg.nz))
    G.eval()


def make_tiny_checkpoint(path: Path) -> Path:
    """A randomly initialised tiny model with all 40 directions, for fast service tests."""
    import torch

    from models import FaceModel, ModelConfig, save_checkpoint

    torch.manual_seed(0)
    m = FaceModel.new(ModelConfig.tiny(encoder="conv"))
    calibrate_batchnorm(m.G)
    m.directions = torch.randn(len(CELEBA_ATTRIBUTES), m.cfg.nz)
    m.attribute_names = list(CELEBA_ATTRIBUTES)
    m.meta = {"default_strength": 1.0, "attributes": {a: {"with": 10, "without": 20} for a in CELEBA_ATTRIBUTES}}
    return save_checkpoint(path, m)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"))


def make_tiny_editor(path: Path) -> Path:
    """A randomly initialised tiny image-to-image editor (32 px) with regions, for fast service
    tests: its mask starts at ~0.08 everywhere, so every edit visibly changes its attribute's region
    of the head and nothing beyond it."""
    import torch

    from models.checkpoint import EditorCalibration, EditorModel, save_editor
    from models.editnet import EditNet, EditorConfig, EditorDiscriminator

    torch.manual_seed(0)
    cfg = EditorConfig(image_size=32, width=8, max_width=32, skips=1, d_width=8, regions=True)
    model = EditorModel(cfg, EditNet(cfg), EditorDiscriminator(cfg), meta={"default_strength": 1.0})
    model.calibrations = {"Smiling": EditorCalibration(2.0, reached=0.9, same_person=0.97)}
    return save_editor(path, model)


@pytest.fixture(scope="session")
def tiny_editor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_editor(tmp_path_factory.mktemp("tiny_editor"))


@pytest.fixture(scope="session")
def photos() -> Path:
    path = SHARED / "photos"
    if not path.is_dir():
        pytest.skip("../shared/data/photos is not beside the project")
    return path


@pytest.fixture(scope="session")
def server(tiny_checkpoint: Path) -> Iterator[str]:
    proc, url = start_server({"FACEEDIT_CHECKPOINT": str(tiny_checkpoint)})
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def make_client(tiny_checkpoint: Path) -> Iterator[Any]:
    """Builds in-process test clients of the app on the tiny model, with Settings overrides."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = Settings(checkpoint=tiny_checkpoint, redis_url=None, **overrides)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> Any:
    return make_client()  # type: ignore[no-any-return]


def wait_for_job(client: Any, job_id: str, timeout: float = 180) -> dict[str, Any]:
    """Poll a job until it has ended (a generous deadline: jobs on a busy 2-core machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/jobs/{job_id}").json()
        if body["status"] in ("succeeded", "failed"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")
