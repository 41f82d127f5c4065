"""The learning-rate schedule and the training CLI's configuration handling."""

import math

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
