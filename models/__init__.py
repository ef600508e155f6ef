"""Networks, checkpoint I/O and the pure tensor math of latent-space face editing."""

from models.checkpoint import CheckpointError, FaceModel, load_checkpoint, save_checkpoint
from models.networks import ModelConfig

__all__ = ["CheckpointError", "FaceModel", "ModelConfig", "load_checkpoint", "save_checkpoint"]
