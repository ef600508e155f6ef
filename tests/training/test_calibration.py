"""How calibration chooses an attribute's strength 1 and area: the person first."""

from __future__ import annotations

from pathlib import Path

import torch

from models import load_checkpoint
from models.areas import HEAD, Area
from tests.app.test_bundled_model import BUNDLED
from tests.conftest import SHARED
from training.calibration import Setting, best_setting, longest_kept
from training.classifier import AttributeClassifier
from training.data import load_celeba
from training.photos import PhotoJudge

EYES = Area(regions=("eyes",))


def test_among_settings_that_reach_the_one_that_keeps_the_person_best() -> None:
    tried = [
        Setting(4.0, HEAD, reached=0.90, same=0.96),
        Setting(6.0, EYES, reached=0.91, same=1.00),
        Setting(8.0, HEAD, reached=0.99, same=0.80),  # reaches most, loses the person
    ]
    assert best_setting(tried, reach=0.85) == tried[1]


def test_when_none_reaches_the_one_that_reaches_most_while_keeping_the_person() -> None:
    tried = [
        Setting(3.0, HEAD, reached=0.40, same=0.98),
        Setting(8.0, EYES, reached=0.60, same=0.96),
        Setting(10.0, HEAD, reached=0.95, same=0.70),
    ]
    assert best_setting(tried, reach=0.85) == tried[1]


def test_when_every_setting_loses_the_person_the_one_that_loses_it_least() -> None:
    tried = [Setting(2.0, HEAD, reached=0.5, same=0.90), Setting(3.0, EYES, reached=0.9, same=0.80)]
    assert best_setting(tried, reach=0.85) == tried[0]


def test_whole_photos_judge_the_person_as_the_service_answers(tmp_path: Path) -> None:
    data = load_celeba(SHARED / "celeba-10k", 64, max_images=300, cache_dir=tmp_path)
    model = load_checkpoint(BUNDLED)
    idx = data.calibration_idx(6, evaluated=10)
    assert data.identities is not None and len(idx) == 6
    assert not set(data.identities[idx]) & set(data.identities[data.val_idx[:10]])  # other people than evaluate's
    photos = PhotoJudge(model, AttributeClassifier(), data, idx)
    assert len(photos.faces) >= 5 and photos.has.shape == (len(photos.faces), 40)
    everyone = torch.ones(len(photos.faces), dtype=torch.bool)
    assert photos.same_share(torch.zeros(100), HEAD, everyone) == 1.0  # no change: the same person
    male = model.direction("Male")
    assert photos.same_share(8 * male / male.norm() * 3, HEAD, everyone) < 1.0  # far enough, someone else


def test_the_longest_length_that_keeps_the_person_is_found_in_few_questions() -> None:
    lengths = [2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0]
    asked: list[float] = []

    def same_at(n: float) -> float:
        asked.append(n)
        return 1.0 if n <= 4.0 else 0.5  # identity falls as the step grows

    pairs = longest_kept(lengths, same_at)
    assert max(n for n, same in pairs if same >= 0.95) == 4.0 and len(asked) <= 4
    never = longest_kept(lengths, lambda n: 0.9)
    assert min(never)[0] == 2.0 and len(never) <= 5  # never kept: down to the shortest
    assert longest_kept(lengths, lambda n: 1.0) == [(10.0, 1.0)]  # the longest is kept: one question
