"""The API's description holds: Schemathesis, all checks, schema-valid requests generated from
`/openapi.json` (bounded: a few examples per operation) against the service on the tiny model.

Every answer is checked by all of Schemathesis's checks (no 5xx, answers as documented, ...),
and a schema-valid request may be refused only for what an OpenAPI document cannot state:
- what an upload holds: the test sends real photos (one face each) where the schema says "a
  file", since a schema cannot say "a photo with a face"; a `face` index past the faces the
  photo has is then the photo's, not the request's, fault;
- what an id names: unknown or expired ids (404, expected by Schemathesis itself), and a
  generated face given to the optimised edit without a photo to match (422);
- that `/edit` needs a face, from an upload or a latent id (a body and a query parameter).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from PIL import Image
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.conftest import SHARED

REFUSED_FOR_WHAT_NO_SCHEMA_STATES = (
    "but the photo has",  # face=i past the faces found
    "is a generated face",  # the optimised edit's target has no photo
    "send an image file or a latent_id",  # /edit with neither
)


def _photo(name: str) -> bytes:
    """A small photo of one face (at most 320 px), fast to encode."""
    path = SHARED / "photos" / name
    if not path.is_file():
        pytest.skip("../shared/data/photos is not beside the project")
    buf = io.BytesIO()
    im = Image.open(path).convert("RGB")
    im.thumbnail((320, 320))
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_schema_valid_requests_are_answered_as_documented(server: str) -> None:
    # a custom attribute needs photos with and without the look that differ
    photos = {"without": _photo("einstein.jpg")}
    photo = _photo("astronaut.png")
    api = schemathesis.openapi.from_url(server + "/openapi.json")
    api.config.generation.update(modes=["positive"])
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def answered(case: Any) -> None:
            if isinstance(case.body, dict) and case.media_type == "multipart/form-data":
                case.body = {
                    k: [photos.get(k, photo)] * len(v) if isinstance(v, list) else photo for k, v in case.body.items()
                }
            response = case.call(timeout=120)
            assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:500]}"
            if response.status_code in (400, 413, 415, 422):
                detail = response.json().get("detail")
                assert isinstance(detail, str) and any(r in detail for r in REFUSED_FOR_WHAT_NO_SCHEMA_STATES), (
                    f"{case.method} {case.path} refused a schema-valid request: "
                    f"{response.status_code} {response.text[:500]}"
                )
            # the other checks, all of them; acceptance is judged above (what no schema states is
            # allowed), and these cases are schema-valid ones (no rejection to check)
            case.validate_response(response, excluded_checks=[positive_data_acceptance, negative_data_rejection])

        answered()


def test_the_schema_states_the_model_s_attribute_names(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    edits = next(p for p in schema["paths"]["/interpolate"]["get"]["parameters"] if p["name"] == "edits")
    names = edits["schema"]["properties"]["attribute"]["items"]["enum"]
    assert "Smiling" in names and len(names) == 40
    body = schema["components"]["schemas"]
    custom = body[
        schema["paths"]["/attributes/custom"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"][
            "$ref"
        ].rsplit("/", 1)[1]
    ]
    assert custom["required"] == ["with", "without"] and custom["properties"]["with"]["minItems"] == 3
