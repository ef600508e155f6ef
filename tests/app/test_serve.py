"""Both ways of serving the app answer: `uvicorn --factory app.main:create_app` (what `make serve`
and the images run) and FastAPI's convention, `uvicorn app.main:app`."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from app.serve import start_server


@pytest.mark.parametrize("factory", [True, False], ids=["factory", "module-app"])
def test_the_app_is_served_either_way(tiny_checkpoint: Path, factory: bool) -> None:
    proc, url = start_server(
        {"FACEEDIT_CHECKPOINT": str(tiny_checkpoint)}, factory=factory
    )  # returns once /ready is 200
    try:
        with urllib.request.urlopen(url + "/attributes", timeout=10) as r:
            assert len(json.load(r)["attributes"]) == 40
    finally:
        proc.terminate()
        proc.wait(10)
