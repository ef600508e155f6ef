"""Hostile input: Schemathesis against the service's own OpenAPI schema, on a real server,
and Hypothesis properties of image decoding and parameter parsing."""

from __future__ import annotations

import io

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.api.routes.faces import parse_edits
from worker.pipeline.errors import ServiceError
from worker.pipeline.images import decode_image


@pytest.fixture(scope="module")
def api_schema(server: str) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(server + "/openapi.json")


def _check_operation(op: schemathesis.APIOperation) -> None:
    documented = set(op.definition.raw.get("responses", {}))

    @given(case=op.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        response = case.call(timeout=30)
        assert response.status_code < 500, (case.method, case.path, response.text[:300])
        assert str(response.status_code) in documented, (
            case.method,
            case.path,
            response.status_code,
            response.text[:200],
        )

    check()


def test_no_server_errors_and_only_documented_codes(api_schema: schemathesis.schemas.BaseSchema) -> None:
    """Every operation, uploads with random bytes included: no 5xx, every status documented."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9
    for op in operations:
        _check_operation(op)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@given(st.binary(max_size=4096))
@settings(max_examples=300, deadline=None)
def test_random_bytes_decode_or_fail_clearly(data: bytes) -> None:
    try:
        img = decode_image(data, 10_000_000)
    except ServiceError as e:
        assert 400 <= e.status_code < 500 and e.message
    else:
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from(["RGB", "RGBA", "L", "P", "LA"]),
    st.integers(0, 10_000),
    st.data(),
)
@settings(max_examples=60, deadline=None)
def test_real_images_survive_truncation(w: int, h: int, mode: str, seed: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    im = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    png = buf.getvalue()
    assert decode_image(png, 10_000).shape == (h, w, 3)
    cut = data.draw(st.integers(0, len(png) - 1))
    try:
        decode_image(png[:cut], 10_000)
    except ServiceError as e:
        assert e.status_code in (413, 415, 422)


names = st.sampled_from(["Male", "Smiling", "Young", "Eyeglasses"])
numbers = st.floats(allow_nan=True, allow_infinity=True)


@given(st.lists(names, max_size=6), st.lists(numbers.map(repr), max_size=6))
def test_parse_edits_pairs_or_refuses(attributes: list[str], strengths: list[str]) -> None:
    try:
        edits = parse_edits(attributes, strengths, 1.0)
    except ServiceError as e:
        assert e.status_code == 422
        assert len(strengths) not in (0, 1, len(attributes))
    else:
        assert [a for a, _ in edits] == attributes
        if len(strengths) == len(attributes):
            assert all(s == float(t) or np.isnan(s) for (_, s), t in zip(edits, strengths, strict=True))


@given(st.text(max_size=50))
def test_parse_edits_never_crashes_on_text(text: str) -> None:
    try:
        parse_edits([text], [text], 1.0)
    except ServiceError as e:
        assert e.status_code == 422
