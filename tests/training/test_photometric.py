"""Appearance-shift transforms change an image as their parameters say, and never the mask."""

import numpy as np
import pytest

from training.datasets.augment import AugmentConfig, augment
from training.datasets.photometric import (
    AppearanceConfig,
    add_noise,
    adjust_gamma,
    downscale_upscale,
    gaussian_blur,
    jpeg,
    random_colour,
    random_degradation,
    specular_highlights,
    white_balance,
)

from .test_augment import drawn_pair

STRONG = AppearanceConfig(gamma=0.5, white_balance=0.2, lowres=1.0, blur=1.0, noise=1.0, jpeg=1.0, specular=1.0)


def textured(height=64, width=80, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)


def test_identity_parameters_change_nothing():
    image = textured()
    np.testing.assert_allclose(adjust_gamma(image, 1.0), image, atol=1e-3)
    np.testing.assert_allclose(white_balance(image, (1.0, 1.0, 1.0)), image)
    np.testing.assert_allclose(gaussian_blur(image, 0.0), image)
    np.testing.assert_allclose(add_noise(image, 0.0, np.random.default_rng(0)), image)
    np.testing.assert_allclose(downscale_upscale(image, 1.0), np.rint(image), atol=0.5)


def test_gamma_brightens_below_one_and_darkens_above():
    grey = np.full((4, 4, 3), 64.0, np.float32)
    assert adjust_gamma(grey, 0.5).mean() == pytest.approx(255 * (64 / 255) ** 0.5, rel=1e-4)
    assert adjust_gamma(grey, 2.0).mean() < 64 < adjust_gamma(grey, 0.5).mean()
    with pytest.raises(ValueError):
        adjust_gamma(grey, 0.0)


def test_white_balance_scales_each_channel():
    grey = np.full((4, 4, 3), 100.0, np.float32)
    np.testing.assert_allclose(white_balance(grey, (1.2, 1.0, 0.8))[0, 0], [120, 100, 80])


def test_blur_smooths_and_downscaling_loses_detail():
    image = textured()
    assert gaussian_blur(image, 1.5).std() < 0.6 * image.std()
    assert downscale_upscale(image, 3.0).std() < 0.6 * image.std()


def test_noise_has_the_asked_std():
    flat = np.full((200, 200, 3), 128.0, np.float32)
    assert add_noise(flat, 5.0, np.random.default_rng(0)).std() == pytest.approx(5.0, rel=0.05)


def test_jpeg_error_grows_as_quality_falls():
    image, _ = drawn_pair()
    image = gaussian_blur(image + textured(*image.shape[:2]) * 0.2, 0.7)
    errors = [np.abs(jpeg(image, quality) - image).mean() for quality in (95, 50, 5)]
    assert errors[0] < errors[1] < errors[2]
    with pytest.raises(ValueError):
        jpeg(image, 0)


def test_specular_highlights_saturate_some_pixels_only():
    image = np.full((100, 120, 3), 90.0, np.float32)
    out = specular_highlights(image, np.random.default_rng(1), count=4, max_radius_fraction=0.1)
    saturated = (out > 250).all(axis=-1).mean()
    assert 0 < saturated < 0.2 and (out >= image - 1e-3).all()


def test_outputs_stay_float_in_range():
    rng = np.random.default_rng(0)
    image = textured()
    for out in (random_colour(image, rng, STRONG), random_degradation(image, rng, STRONG)):
        assert out.dtype == np.float32 and out.shape == image.shape
        assert out.min() >= 0 and out.max() <= 255


def test_appearance_never_moves_the_mask_and_changes_the_image():
    image, mask = drawn_pair()
    plain, with_shift = AugmentConfig(), AugmentConfig(appearance=STRONG)
    for seed in range(5):
        image_a, mask_a = augment(image, mask, np.random.default_rng(seed), (64, 80), plain)
        image_b, mask_b = augment(image, mask, np.random.default_rng(seed), (64, 80), with_shift)
        np.testing.assert_array_equal(mask_a, mask_b)
        assert np.abs(image_a - image_b).mean() > 2.0


def test_disabled_appearance_keeps_the_old_random_stream():
    image, mask = drawn_pair()
    config = AugmentConfig(color_jitter=0.3, appearance=AppearanceConfig())
    first = augment(image, mask, np.random.default_rng(7), (64, 80), config)
    second = augment(image, mask, np.random.default_rng(7), (64, 80), AugmentConfig(color_jitter=0.3))
    np.testing.assert_array_equal(first[0], second[0])
    assert not AppearanceConfig().enabled and STRONG.enabled


@pytest.mark.parametrize("fields", [{"blur": 1.5}, {"lowres": -0.1}, {"lowres_factor": 0.5}, {"white_balance": 1.0},
                                    {"gamma": -0.1}, {"jpeg_quality": 0}])
def test_bad_settings_are_rejected(fields):
    with pytest.raises(ValueError):
        AppearanceConfig(**fields)
