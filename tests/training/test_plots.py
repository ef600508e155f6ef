from pathlib import Path

import matplotlib.axes
import pytest

from training.plots import save_loss_plot


def test_a_loss_turned_on_at_a_resume_is_drawn_at_the_steps_it_was_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: dict[str, list[int]] = {}
    plot = matplotlib.axes.Axes.plot

    def record(self, x, y, *args, label: str, **kwargs):  # type: ignore[no-untyped-def]
        drawn[label] = list(x)
        return plot(self, x, y, *args, label=label, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    steps = list(range(1, 401))
    history = {"D": [1.0] * 400, "cycle": [0.5] * 100}  # the cycle began at step 301
    path = save_loss_plot(history, steps, tmp_path / "loss.png", "losses")
    assert path.stat().st_size > 0
    assert drawn["D"][-1] == drawn["cycle"][-1] == 400
    assert drawn["cycle"][0] == 304 and drawn["D"][0] == 4  # smoothed over 4 steps: the first mean ends there
