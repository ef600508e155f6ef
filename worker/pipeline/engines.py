"""Either loaded model, as the service holds it: the latent model (`Engine`: G, E, directions)
or the image-to-image editor (`EditNetEngine`), chosen by the checkpoint's family."""

from __future__ import annotations

from pathlib import Path

from models.checkpoint import family_of
from worker.pipeline.editnet import EditNetEngine
from worker.pipeline.engine import Engine
from worker.pipeline.errors import InvalidParameter

AnyEngine = Engine | EditNetEngine


def load_engine(path: str | Path, device: str = "cpu", batch_max: int = 16, batch_wait_ms: float = 2.0) -> AnyEngine:
    """The checkpoint folder's model, ready to serve (its passes batched across requests)."""
    if family_of(path) == "editnet":
        return EditNetEngine.from_checkpoint(str(path), device, batch_max, batch_wait_ms)
    return Engine.from_checkpoint(str(path), device, batch_max, batch_wait_ms)


def latent_engine(engine: AnyEngine, what: str) -> Engine:
    """The engine, when `what` needs a latent model; a clear 422 naming the loaded family otherwise."""
    if isinstance(engine, EditNetEngine):
        raise InvalidParameter(
            f"{what} needs a latent model (a GAN with an encoder); the loaded model is the image-to-image "
            "editor (family editnet), which edits photos directly and has no latent space",
            family=engine.family,
        )
    return engine
