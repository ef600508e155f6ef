"""Request and response schemas of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from worker.pipeline.encoded import Encoded
from worker.service.jobs import Status


class ErrorResponse(BaseModel):
    detail: str


class Inversion(BaseModel):
    refined: bool = Field(description="whether E(x) was refined towards the photo")
    steps: int
    ms: float
    l2_encoder: float | None = Field(description="pixel L2 (images in [-1, 1]) of G(E(x)) against the face")
    l2: float | None = Field(description="pixel L2 of G(z) after refinement")

    @classmethod
    def of(cls, face: Encoded) -> Inversion:
        """How the face's inversion went (E(x) alone, or refined)."""
        stats = face.inversion
        if stats is None:
            return cls(refined=False, steps=0, ms=0.0, l2_encoder=None, l2=None)
        return cls(
            refined=True,
            steps=stats.steps,
            ms=round(1000 * stats.seconds, 1),
            l2_encoder=stats.l2_start,
            l2=stats.l2,
        )


class EncodeResponse(BaseModel):
    latent_id: str = Field(description="opaque, unguessable id of the encoded face; expires with its TTL")
    z: list[float] = Field(description="the latent vector E(x)")
    face_box: list[int] | None = Field(description="x, y, width, height of the face in the photo")
    faces_found: int
    faces: list[list[int]] = Field(
        description="every face found (x, y, width, height), largest first; face=i picks one"
    )
    aligned: str = Field(description="the aligned face crop the model sees, as a PNG data URL")
    reconstruction: str = Field(description="G(z) as a PNG data URL")
    inversion: Inversion


class EditItem(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    attribute: str = Field(examples=["Smiling"])
    strength: float = Field(examples=[1.0])


class EditResponse(BaseModel):
    image: str = Field(description="data URL of the edited photo (its own format) or of the 64 px generated face")
    edits: list[EditItem]
    pasted: bool
    latent_id: str
    box: list[int] | None = Field(None, description="tile=true: the tile's x0, y0, x1, y1 in the photo")
    photo_size: list[int] | None = Field(None, description="the photo's width and height (pasted answers)")


class InterpolateResponse(BaseModel):
    method: Literal["slerp", "linear"]
    frames: list[str] = Field(description="PNG data URLs, from the first face to the second")


class OptimizedEditRequest(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    latent_id: str = Field(
        min_length=1, max_length=64, description="the encoded face to edit (its z = E(x) is the start z0)"
    )
    edits: list[EditItem] = Field(default=[], max_length=8, description="attribute edits applied to z0 first")
    target_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="encoded face whose aligned image is the pixel target; default: the face itself "
        "(required when latent_id is a generated face)",
    )
    steps: int = Field(100, ge=1, le=500)
    lambda1: float = Field(0.01, ge=0, le=10, description="weight of ||z - z0||^2")
    lambda2: float = Field(0.001, ge=0, le=10, description="weight of the discriminator's realism term")
    lr: float = Field(0.05, gt=0, le=1)
    strokes: str | None = Field(
        None,
        max_length=8_000_000,
        description="brush edit: an image (data URL or base64) of colour strokes over the aligned face",
    )
    mask: str | None = Field(
        None,
        max_length=8_000_000,
        description="brush edit: an image of the same size, painted (not black) where the strokes apply",
    )

    @field_validator("steps", "lambda1", "lambda2", "lr", mode="before")
    @classmethod
    def _no_booleans(cls, v: object) -> object:
        if isinstance(v, bool):  # JSON true/false would otherwise be read as 1 / 0
            raise ValueError("must be a number, not a boolean")
        return v


class JobAccepted(BaseModel):
    job_id: str
    status: Status
    status_url: str
    result_url: str


class JobStatus(BaseModel):
    id: str
    status: Status
    progress: float = Field(ge=0, le=1)
    step: int
    steps: int
    error: str | None
    attempts: int = Field(description="how many times a worker has started the job")
    created_at: float
    updated_at: float
    heartbeat_at: float | None = Field(description="last sign of life of the worker running it")


class AttributeInfo(BaseModel):
    name: str
    description: str
    with_count: int | None = Field(description="training faces labelled with the attribute")
    without_count: int | None = Field(description="training faces labelled without it")
    regions: list[str] = Field(description="where in the face the edit acts: head, face, hair, eyes, mouth")
    reached: float | None = Field(
        None, description="share of held-out faces strength 1 moved to the other side (calibration)"
    )
    same_person: float | None = Field(
        None, description="share of them still the same person by a face-recognition model (calibration)"
    )


class AttributesResponse(BaseModel):
    attributes: list[AttributeInfo]
    default_strength: float
    max_strength: float
    family: str = Field(description="the loaded model's family: editnet (the image-to-image editor), dcgan, cgan...")
    latent: bool = Field(
        description="the model has a latent space: morphing, random faces and custom attributes need one "
        "(with the editor they answer 422)"
    )


class CustomAttribute(BaseModel):
    id: str = Field(description="use it as an attribute name in /edit; expires with its TTL")
    name: str
    keep: list[str] = Field(description="built-in attributes the edit was made orthogonal to")
    faces_with: int
    faces_without: int
    expires_in_s: int


class GeneratedFace(BaseModel):
    latent_id: str
    image: str


class GenerateResponse(BaseModel):
    faces: list[GeneratedFace]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    model: str
    image_size: int
    queue: Literal["embedded", "redis"]
    queue_reachable: bool
    memory_limit_bytes: int | None = Field(
        None, description="the process's memory limit (FACEEDIT_MEMORY_LIMIT_BYTES, or the container's); none: null"
    )
    memory_limit_source: Literal["setting", "cgroup", "none"] = "none"
    photo_memory_bytes: int = Field(0, description="photos in flight at most (a share of the limit, if any)")
    face_cache_bytes: int = Field(0, description="decoded faces kept for fast edits at most")
    memory_store_bytes: int | None = Field(None, description="the in-memory store at most (embedded mode)")
