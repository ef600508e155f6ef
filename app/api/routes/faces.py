"""Encode, edit, interpolate and generate faces."""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Header, Path, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.api.deps import ServiceDep
from app.schemas import (
    EditItem,
    EditResponse,
    EncodeResponse,
    GeneratedFace,
    GenerateResponse,
    InterpolateResponse,
    Inversion,
)
from worker.pipeline.composite import Blend
from worker.pipeline.errors import InvalidParameter
from worker.pipeline.images import data_url, gif_bytes, png_bytes, strip
from worker.service.editor import Output
from worker.service.service import Service

router = APIRouter(tags=["faces"])
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
IMAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
        "description": "the edited photo in the upload's format, or the generated face as PNG",
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown or expired id"},
    413: {"description": "upload or image too large"},
    415: {"description": "not an image"},
    422: {"description": "no face, damaged image or invalid parameter"},
}
EDIT_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    406: {"description": "the Accept header allows none of image/jpeg, image/webp, image/png"},
    503: {"description": "too many big photos in flight (Retry-After says when to come back), or Redis down"},
}
FileDep = Annotated[UploadFile | None, File(description="a photo (JPEG, PNG, WebP...)")]


@router.post("/encode", response_model=EncodeResponse, responses=ERRORS)
async def encode(
    service: ServiceDep,
    file: Annotated[UploadFile, File(description="a photo (JPEG, PNG, WebP...)")],
    face: Annotated[int, Query(ge=0, le=99, description="which face, largest first")] = 0,
    aligned: Annotated[bool, Query(description="the upload is already an aligned face crop")] = False,
    refine: Annotated[bool, Query(description="refine E(x) towards the photo (slower, closer to the person)")] = True,
) -> EncodeResponse:
    """Find the face, align it, invert it, and return its latent id, z and reconstruction."""
    data = await file.read()
    return await run_in_threadpool(_encode, service, data, face, aligned, refine)


def _encode(service: Service, data: bytes, face: int, aligned: bool, refine: bool) -> EncodeResponse:
    enc = service.faces.encode(data, face=face, aligned=aligned, refine=refine)
    assert enc.aligned is not None
    rec = service.faces.reconstruction(enc)
    return EncodeResponse(
        latent_id=enc.latent_id,
        z=enc.z.tolist(),
        face_box=list(enc.face_box) if enc.face_box else None,
        faces_found=max(1, len(enc.all_faces)),
        faces=[list(b) for b in enc.all_faces],
        aligned=data_url(png_bytes(enc.aligned.pixels)),
        reconstruction=data_url(png_bytes(rec)),
        inversion=Inversion.of(enc),
    )


def parse_edits(attributes: list[str], strengths: list[str], default: float) -> list[tuple[str, float]]:
    """Repeated parameters or one JSON list each; one strength applies to every attribute."""

    def expand(values: list[str]) -> list[str]:
        if len(values) == 1 and values[0].strip().startswith("["):
            try:
                parsed = json.loads(values[0])
            except json.JSONDecodeError as e:
                raise InvalidParameter(f"not a valid JSON list: {values[0][:80]!r}") from e
            if not isinstance(parsed, list):
                raise InvalidParameter("expected a JSON list")
            return [str(v) for v in parsed]
        return values

    names = expand(attributes)
    try:
        values = [float(s) for s in expand(strengths)]
    except ValueError as e:
        raise InvalidParameter(f"strength must be a number: {e}") from e
    if not values:
        values = [default] * len(names)
    elif len(values) == 1:
        values = values * len(names)
    elif len(values) != len(names):
        raise InvalidParameter(
            f"{len(names)} attributes but {len(values)} strengths; give one strength or one per attribute"
        )
    return list(zip(names, values, strict=True))


@router.post("/edit", responses={**IMAGE, **EDIT_ERRORS}, response_model=EditResponse)
async def edit(
    service: ServiceDep,
    file: FileDep = None,
    latent_id: Annotated[str | None, Query(max_length=64, description="an id from /encode or /generate")] = None,
    attribute: Annotated[list[str], Query(description="attribute name; repeat it, or send a JSON list")] = [],  # noqa: B006
    strength: Annotated[list[str], Query(description="one per attribute, or one for all (default: the model's)")] = [],  # noqa: B006
    paste: Annotated[
        bool | None,
        Query(
            description="true: the whole photo with the edit applied; false: the 64 px generated face; "
            "default: the photo when the face came from one"
        ),
    ] = None,
    blend: Annotated[
        Blend,
        Query(description="change: your photo + the edit's change (keeps you); generated: the model's face pasted"),
    ] = "change",
    format: Annotated[Literal["image", "json"], Query(description="image: in the upload's format")] = "image",
    face: Annotated[int, Query(ge=0, le=99)] = 0,
    aligned: Annotated[bool, Query()] = False,
    refine: Annotated[bool, Query(description="with an upload: refine its inversion (slower, closer to you)")] = True,
    tile: Annotated[
        bool,
        Query(
            description="only the rectangle of the photo the edit touched (its box in X-Tile-Box: x0,y0,x1,y1), "
            "to composite over the photo the client already shows; the fastest answer"
        ),
    ] = False,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response | EditResponse:
    """Edit a face's attributes: z + sum s_i v_i, applied to your photo (or rendered by G).

    The photo comes back in the upload's own format unless the Accept header asks for another
    (`Accept: image/jpeg` is the cheap answer for a slider preview of a PNG photo)."""
    edits = parse_edits(attribute, strength, service.editor.default_strength)
    output = Output(accept=accepted(accept) if format == "image" else (), tile=tile)
    upload = await file.read() if file is not None else None
    out = await run_in_threadpool(
        partial(
            service.editor.edit,
            edits,
            paste=paste,
            blend=blend,
            latent_id=latent_id,
            upload=upload,
            face=face,
            aligned=aligned,
            refine=refine,
            output=output,
        )
    )
    if format == "json":
        return EditResponse(
            image=data_url(out.data, out.media_type),
            edits=[EditItem(attribute=a, strength=s) for a, s in edits],
            pasted=out.pasted,
            latent_id=out.latent_id,
            box=list(out.box) if out.box else None,
            photo_size=list(out.photo_size) if out.photo_size else None,
        )
    headers = {"X-Latent-Id": out.latent_id, "Vary": "Accept"}
    if out.box is not None and out.photo_size is not None:
        headers["X-Tile-Box"] = ",".join(map(str, out.box))
        headers["X-Photo-Size"] = ",".join(map(str, out.photo_size))
    return Response(out.data, media_type=out.media_type, headers=headers)


def accepted(header: str | None) -> tuple[str, ...]:
    """The media types of an Accept header, most preferred first (q=0 left out)."""
    if not header:
        return ()
    ranked = []
    for i, part in enumerate(header.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media and q > 0:
            ranked.append((-q, i, media.lower()))
    return tuple(m for _, _, m in sorted(ranked))


@router.delete(
    "/latents/{latent_id}",
    status_code=204,
    response_class=Response,
    responses={404: {"description": "unknown or expired latent id (or already deleted)"}},
)
async def forget(service: ServiceDep, latent_id: Annotated[str, Path(max_length=64)]) -> Response:
    """Delete an upload now: its photo, aligned face and latent, wherever kept; the jobs made from
    it fail ("deleted at its owner's request") and their results go. Every route answers 404 after."""
    await run_in_threadpool(service.forget, latent_id)
    return Response(status_code=204)


@router.get(
    "/interpolate",
    responses={200: {"content": {"image/png": {}, "image/gif": {}}}, 404: ERRORS[404], 422: ERRORS[422]},
    response_model=InterpolateResponse,
)
async def interpolate(
    service: ServiceDep,
    from_id: Annotated[str, Query(alias="from", max_length=64)],
    to_id: Annotated[str, Query(alias="to", max_length=64)],
    steps: Annotated[int, Query(ge=2, le=32)] = 8,
    method: Annotated[Literal["slerp", "linear"], Query()] = "slerp",
    format: Annotated[Literal["png", "gif", "json"], Query()] = "png",
    attribute: Annotated[list[str], Query(description="edits applied to every frame, as in /edit")] = [],  # noqa: B006
    strength: Annotated[list[str], Query(description="one per attribute, or one for all")] = [],  # noqa: B006
) -> Response | InterpolateResponse:
    """Frames between two encoded faces (each with the same edits, if any), as a PNG strip, an
    animated GIF or JSON."""
    edits = parse_edits(attribute, strength, service.editor.default_strength)
    frames = await run_in_threadpool(
        partial(service.editor.interpolate, from_id, to_id, steps=steps, method=method, edits=edits)
    )
    if format == "png":
        return Response(png_bytes(strip(frames)), media_type="image/png")
    if format == "gif":
        return Response(gif_bytes(frames), media_type="image/gif")
    return InterpolateResponse(method=method, frames=[data_url(png_bytes(f)) for f in frames])


@router.get("/generate", responses={**PNG, 422: ERRORS[422]}, response_model=GenerateResponse)
async def generate(
    service: ServiceDep,
    seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    n: Annotated[int, Query(ge=1, le=16)] = 4,
    format: Annotated[Literal["png", "json"], Query()] = "png",
) -> Response | GenerateResponse:
    """Random faces G(z), z ~ N(0, I) from the seed; each gets a latent id to edit."""
    images, ids = await run_in_threadpool(service.faces.generate, seed, n)
    if format == "png":
        return Response(png_bytes(strip(images)), media_type="image/png")
    return GenerateResponse(
        faces=[GeneratedFace(latent_id=i, image=data_url(png_bytes(im))) for i, im in zip(ids, images, strict=True)]
    )
