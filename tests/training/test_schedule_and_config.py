"""The learning-rate schedule and the training CLI's configuration handling."""

import math
from pathlib import Path

import numpy as np
import pytest

from training.config import TrainConfig, parse_args
from training.schedule import WarmupCosine


def _lr(schedule, step):
    return float(np.asarray(schedule(step)))


def test_warmup_then_cosine_from_peak_to_floor():
    schedule = WarmupCosine(total_steps=110, peak=0.007, floor=0.0001, warmup_steps=10)
    assert _lr(schedule, 0) == pytest.approx(0.0007)
    assert _lr(schedule, 9) == pytest.approx(0.007)
    assert _lr(schedule, 10) == pytest.approx(0.007)
    assert _lr(schedule, 60) == pytest.approx(0.0001 + 0.5 * (0.007 - 0.0001) * (1 + math.cos(math.pi / 2)))
    assert _lr(schedule, 110) == pytest.approx(0.0001)
    assert _lr(schedule, 500) == pytest.approx(0.0001)


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError):
        WarmupCosine(total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError):
        WarmupCosine(total_steps=10, peak=0.001, floor=0.01)


def test_flags_override_the_toml_file(tmp_path):
    config_file = tmp_path / "run.toml"
    config_file.write_text('run_name = "x"\ncrop_size = 320\naspp_rates = [3, 6, 12]\n')
    config = parse_args(["--config", str(config_file), "--crop-size", "256", "--mixed-precision",
                         "--backbone-options", '{"alpha": 0.5}'])
    assert (config.run_name, config.crop_size, config.aspp_rates) == ("x", 256, [3, 6, 12])
    assert config.mixed_precision is True
    assert config.backbone_options == {"alpha": 0.5}


def test_unknown_toml_key_and_bad_values_are_reported(tmp_path, capsys):
    config_file = tmp_path / "run.toml"
    config_file.write_text("learning_rat = 0.1\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(config_file)])
    assert "learning_rat" in capsys.readouterr().err
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(strategy="horovod")
    with pytest.raises(ValueError, match="crop_size"):
        TrainConfig(crop_size=4096)


def test_budget_sizes_the_run_from_the_calibration(tmp_path, monkeypatch):
    """training.budget: a 2-epoch calibration (whose first epoch pays the compile), then the real run
    with as many epochs as fit in what is left, and --max-minutes as the backstop."""
    from training import budget

    calls = []

    def fake_train(flags):
        calls.append(flags)
        if "calibration" in flags:  # the steady epoch takes 10 s
            last = max(i for i, flag in enumerate(flags) if flag == "--checkpoint-dir")  # argparse: last wins
            run = Path(flags[last + 1]) / "calibration"
            run.mkdir(parents=True)
            (run / "history.csv").write_text("epoch,loss,epoch_seconds\n0,1.0,40.0\n1,0.9,10.0\n")

    clock = iter([0.0, 0.0, 60.0, 60.0])  # deadline, calibration start and end, time left
    monkeypatch.setattr(budget, "_train", fake_train)
    monkeypatch.setattr(budget.time, "monotonic", lambda: next(clock))
    budget.main(["--minutes", "10", "--run-name", "r", "--checkpoint-dir", str(tmp_path)])
    calibration, real = calls
    assert calibration[calibration.index("--epochs") + 1] == str(budget.CALIBRATION_EPOCHS)
    # 540 s left * SAFETY, less a start-up of 60 - 10 = 50 s, at 10 s per epoch
    assert real[-4:] == ["--epochs", str(math.floor((540 * budget.SAFETY - 50) / 10)), "--max-minutes", "9.00"]
    assert real[:4] == ["--run-name", "r", "--checkpoint-dir", str(tmp_path)]


def test_budget_always_runs_at_least_one_epoch():
    from training.budget import SAFETY, epochs_that_fit

    assert epochs_that_fit(seconds_left=30, startup_seconds=60, epoch_seconds=10) == 1
    assert epochs_that_fit(seconds_left=1000, startup_seconds=50, epoch_seconds=10) == (1000 * SAFETY - 50) // 10


def test_loader_settings_are_left_out_of_the_reproduce_command():
    """How many loaders make a run's batches does not change them, so the command omits it."""
    from training.config import train_command

    command = train_command({**TrainConfig(loader_workers=14, loader_processes=True).to_dict(), "epochs": 3})
    assert "loader" not in command and "--epochs 3" in command
