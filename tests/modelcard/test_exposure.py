"""Exposure normalisation: a dark or bright real frame comes back most of the way to the target
brightness with its tones in order, the uint8 and float paths agree, and images with nothing to
correct are left alone."""

import numpy as np
import pytest
from PIL import Image

from modelcard.exposure import MAX_GAMMA, MIN_GAMMA, exposure_gamma, mean_brightness, normalise_exposure
from modelcard.geometry import PAD_VALUE, letterbox
from training.datasets.photometric import adjust_gamma


@pytest.fixture(scope="module")
def frame(camvid_image) -> np.ndarray:
    return np.asarray(Image.open(camvid_image).convert("RGB"))


@pytest.mark.parametrize("gamma", [0.5, 2.0])  # over- and under-exposed
def test_a_re_exposed_real_frame_comes_back_close_to_the_original(frame, gamma):
    shifted = np.rint(adjust_gamma(frame, gamma)).astype(np.uint8)
    target = mean_brightness(frame)
    restored = normalise_exposure(shifted, target)
    assert restored.dtype == np.uint8 and restored.shape == frame.shape
    # The mean tone goes to the target, so the mean goes most of the way (short of it, by design).
    assert abs(mean_brightness(restored) - target) < abs(mean_brightness(shifted) - target) / 2
    error_before = np.abs(shifted.astype(int) - frame).mean()
    error_after = np.abs(restored.astype(int) - frame).mean()
    assert error_after < error_before / 2


def test_uint8_and_float_paths_agree_and_keep_the_order_of_tones(frame):
    dark = np.rint(adjust_gamma(frame, 2.0)).astype(np.uint8)
    as_uint8 = normalise_exposure(dark, 120.0)
    as_float = normalise_exposure(dark.astype(np.float32), 120.0)
    assert as_float.dtype == np.float32
    assert np.abs(as_uint8.astype(np.float32) - as_float).max() <= 0.5 + 1e-3
    ramp = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (4, 1, 3))
    assert np.all(np.diff(normalise_exposure(ramp, 200.0)[0, :, 0].astype(int)) >= 0)


def test_flat_black_and_white_images_are_left_alone_and_the_gamma_is_bounded():
    for value in (0, 255):
        flat = np.full((8, 8, 3), value, np.uint8)
        assert normalise_exposure(flat, 118.0) is flat
    assert exposure_gamma(2.0, 250.0) == MIN_GAMMA and exposure_gamma(250.0, 2.0) == MAX_GAMMA
    assert exposure_gamma(255 * 0.25, 255 * 0.5) == pytest.approx(0.5)  # 0.25 ** 0.5 = 0.5
    with pytest.raises(ValueError, match="exposure target mean"):
        exposure_gamma(100.0, 255.0)


def test_letterbox_normalises_the_image_and_never_the_padding(frame):
    dark = np.rint(adjust_gamma(frame, 2.0)).astype(np.uint8)
    canvas, placement = letterbox(dark, (512, 512), exposure_target_mean=mean_brightness(frame))
    plain, same_placement = letterbox(dark, (512, 512))
    assert placement == same_placement
    rows = slice(placement.top, placement.top + placement.height)
    assert mean_brightness(canvas[rows]) > mean_brightness(plain[rows]) + 20
    padding = np.concatenate([canvas[:placement.top], canvas[placement.top + placement.height:]])
    assert padding.size and np.all(padding == PAD_VALUE)
