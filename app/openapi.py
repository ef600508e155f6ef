"""The API's own description, as strict as the API: what the routes' types cannot say.

FastAPI writes the schema from the routes' types. Some constraints are the loaded model's (its
attribute names, the strength bound and the edit count of the settings), and one is between two
parameters (one strength for every attribute, or one each); they are written into the schema
here, when it is first asked for, so that a client generated from `/openapi.json` sends only
requests the service accepts. The routes still accept the forms documented in their descriptions
(a JSON list in one `attribute` value), a superset of what the schema states.
"""

from __future__ import annotations

from typing import Any

# an image as a data URL or plain base64 (app.api.routes.jobs.from_data_url): whole 4-character groups
BASE64 = r"^(data:image/[a-z]+;base64,)?([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
CUSTOM_ID = r"^custom-[A-Za-z0-9_-]{22}$"  # worker.service.custom: PREFIX + a new id (16 random bytes)
EXAMPLE_PHOTOS = (3, 12)  # worker.service.custom.EXAMPLES: photos with, and without, the look


def stated(schema: dict[str, Any], names: list[str], max_strength: float, max_edits: int) -> dict[str, Any]:
    """`schema` with the model's attribute names, the strength bound and the edit count stated."""
    builtin = {"type": "string", "enum": sorted(names)}
    strength = {"type": "number", "minimum": -max_strength, "maximum": max_strength}
    paths = schema["paths"]
    for path, name in (
        ("/edit", {"anyOf": [builtin, {"type": "string", "pattern": CUSTOM_ID}]}),
        ("/interpolate", builtin),
    ):
        for op in paths[path].values():
            kept = [p for p in op["parameters"] if p["name"] not in ("attribute", "strength")]
            op["parameters"] = [*kept, _edits_parameter(name, strength, max_edits)]
    custom = paths["/attributes/custom"]["post"]
    for p in custom["parameters"]:
        if p["name"] == "keep":
            p["schema"]["items"] = builtin
    components = schema["components"]["schemas"]
    body = components[_ref(custom["requestBody"])]
    for part in ("with", "without"):
        body["properties"][part].update(minItems=EXAMPLE_PHOTOS[0], maxItems=EXAMPLE_PHOTOS[1])
    edit_body = components[_ref(paths["/edit"]["post"]["requestBody"])]
    edit_body["properties"]["file"] = {
        "type": "string",
        "format": "binary",
        "description": "a photo (JPEG, PNG, WebP...)",
    }
    optimized = components[_ref(paths["/edits/optimized"]["post"]["requestBody"], "application/json")]
    optimized["properties"]["edits"]["items"] = {
        "type": "object",
        "properties": {"attribute": builtin, "strength": strength},
        "required": ["attribute", "strength"],
        "additionalProperties": False,
    }
    for image in ("strokes", "mask"):
        for branch in optimized["properties"][image]["anyOf"]:
            if branch.get("type") == "string":
                branch["pattern"] = BASE64
    return schema


def _edits_parameter(name: dict[str, Any], strength: dict[str, Any], max_edits: int) -> dict[str, Any]:
    """`attribute` and `strength` as one exploded object, so that their counts can be tied: no
    strength (the model's default), one for every attribute, or one per attribute."""
    one_each = [
        {
            "required": ["attribute", "strength"],
            "properties": {"attribute": {"minItems": n, "maxItems": n}, "strength": {"minItems": n, "maxItems": n}},
        }
        for n in range(2, max_edits + 1)
    ]
    return {
        "name": "edits",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "description": "`attribute` (repeated: attribute names, or custom attribute ids in /edit) and `strength` "
        "(none: the model's default; one for every attribute, or one per attribute)",
        "schema": {
            "type": "object",
            "properties": {
                "attribute": {"type": "array", "items": name, "maxItems": max_edits},
                "strength": {"type": "array", "items": strength, "maxItems": max_edits},
            },
            "additionalProperties": False,
            "anyOf": [{"properties": {"strength": {"maxItems": 1}}}, *one_each],
        },
    }


def _ref(body: dict[str, Any], media_type: str = "multipart/form-data") -> str:
    return str(body["content"][media_type]["schema"]["$ref"]).rsplit("/", 1)[1]
