"""Where an edit acts: areas, their JSON form, and the change mask."""

from __future__ import annotations

import numpy as np
import pytest

from models.areas import HEAD, Area, change_mask, union


def test_areas_combine_and_travel_as_json() -> None:
    a, b = Area(focus=(0.25, 0.6), regions=("eyes",)), Area(regions=("hair", "face"))
    both = union([a, b])
    assert both.regions == ("face", "hair", "eyes") and both.focus == (0.0, 0.0)
    assert union([]) == HEAD
    assert Area.from_json(a.to_json()) == a
    assert Area.from_json({"focus": [0.1, 0.35]}) == Area(focus=(0.1, 0.35))  # calibrated before areas
    with pytest.raises(ValueError, match="regions"):
        Area(regions=("nose",))
    with pytest.raises(ValueError, match="geometry"):
        change_mask(np.ones((64, 64, 3), np.float32), np.ones((64, 64), bool), a)


@pytest.mark.parametrize(
    "raw",
    [{"focus": [0.6, 0.2]}, {"focus": [0.1, 2.0]}, {"focus": 0.3}, {"regions": "eyes"}, {"regions": ["nose"]}],
)
def test_a_malformed_area_is_refused_with_what_is_wrong(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="focus|regions|area"):
        Area.from_json(raw)
