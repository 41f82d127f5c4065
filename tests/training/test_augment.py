"""Augmentation keeps image and mask aligned; the pipeline emits what the model and losses expect.

The test image is drawn from its mask (colour = COLOURS[class]), so after any transform the mask
can be recomputed from the augmented image and compared with the augmented mask.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from tests.support.images import save_gray
from training.datasets import IGNORE_INDEX, SegmentationBatches, get_dataset, make_pipeline
from training.datasets.augment import (
    IMAGE_FILL,
    AugmentConfig,
    Transform,
    apply_transform,
    augment,
    letterbox_pair,
    one_hot,
    random_transform,
)

COLOURS = np.array(
    [[30, 30, 30], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.float32
)


def drawn_pair(height=96, width=128):
    """An asymmetric mask (rectangle, disc, triangle, stripe) and the image painted from it."""
    rows, cols = np.mgrid[:height, :width]
    mask = np.zeros((height, width), np.uint8)
    mask[8:40, 10:70] = 1
    mask[(rows - 65) ** 2 + (cols - 95) ** 2 < 22**2] = 2
    mask[(rows > 50) & (cols < 45) & (cols - 5 < rows - 50)] = 3
    mask[:, 118:124] = 4
    return COLOURS[mask], mask


def mask_from_image(image):
    distances = np.linalg.norm(image[..., None, :] - COLOURS, axis=-1)
    return distances.argmin(-1)


def interior(mask):
    """Pixels whose 3x3 neighbourhood has one label (bilinear blends colours only at edges)."""
    padded = np.pad(mask, 1, mode="edge")
    same = np.ones(mask.shape, bool)
    for dy in range(3):
        for dx in range(3):
            same &= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]] == mask
    return same & (mask != IGNORE_INDEX)


def agreement(image, mask):
    """Fraction of labelled interior pixels whose colour gives back their mask class."""
    image, mask = np.asarray(image), np.asarray(mask)
    keep = interior(mask)
    assert keep.mean() > 0.3, "too few labelled pixels left to judge alignment"
    return (mask_from_image(image)[keep] == mask[keep]).mean()


def run(transform, crop_size, pair=None):
    image, mask = pair or drawn_pair()
    return apply_transform(image, mask, transform, crop_size)


def test_flip_alone_mirrors_both_exactly():
    image, mask = drawn_pair()
    out_image, out_mask = run(Transform(flip=True), (96, 128))
    np.testing.assert_array_equal(out_mask, mask[:, ::-1])
    np.testing.assert_allclose(out_image, image[:, ::-1], atol=1e-3)


def test_vertical_flip_alone_mirrors_both_upside_down_exactly():
    image, mask = drawn_pair()
    out_image, out_mask = run(Transform(vertical_flip=True), (96, 128))
    np.testing.assert_array_equal(out_mask, mask[::-1])
    np.testing.assert_allclose(out_image, image[::-1], atol=1e-3)


def test_both_flips_with_rotation_and_scale_stay_aligned():
    transform = Transform(scale=0.9, angle=np.radians(12.0), flip=True, vertical_flip=True)
    image, mask = run(transform, (86, 115))
    assert agreement(image, mask) > 0.99
    both_flipped = run(Transform(flip=True, vertical_flip=True), (96, 128))[1]
    np.testing.assert_array_equal(both_flipped, drawn_pair()[1][::-1, ::-1])


def test_crop_alone_slices_both_exactly():
    image, mask = drawn_pair()
    out_image, out_mask = run(Transform(offset=(10, 20)), (50, 60))
    np.testing.assert_array_equal(out_mask, mask[10:60, 20:80])
    np.testing.assert_allclose(out_image, image[10:60, 20:80], atol=1e-3)


def test_crop_beyond_the_image_pads_grey_and_ignore():
    image, mask = drawn_pair()
    out_image, out_mask = run(Transform(offset=(-4, -6)), (104, 140))
    np.testing.assert_array_equal(out_mask[4:100, 6:134], mask)
    assert (out_mask[:4] == IGNORE_INDEX).all() and (out_mask[:, 134:] == IGNORE_INDEX).all()
    assert np.allclose(out_image[:3], IMAGE_FILL) and np.allclose(out_image[:, 135:], IMAGE_FILL)


def test_scale_alone_uses_nearest_for_the_mask():
    _, mask = drawn_pair()
    image, out_mask = run(Transform(scale=2.0), (192, 256))
    np.testing.assert_array_equal(out_mask, mask.repeat(2, 0).repeat(2, 1))
    assert set(np.unique(out_mask)) == set(np.unique(mask))  # no blended class ids
    assert agreement(image, out_mask) > 0.995


@pytest.mark.parametrize("scale", [0.5, 0.77, 1.6])
def test_scaled_pair_stays_aligned(scale):
    assert agreement(*run(Transform(scale=scale), (round(96 * scale), round(128 * scale)))) > 0.99


def test_rotation_moves_content_and_keeps_alignment():
    _, mask = drawn_pair()
    image, out_mask = run(Transform(angle=np.radians(15.0)), (96, 128))
    labelled = out_mask != IGNORE_INDEX
    assert (out_mask[labelled] != mask[labelled]).mean() > 0.05  # it really rotated
    assert (out_mask == IGNORE_INDEX).any()  # corners rotated in from outside are ignored
    assert agreement(image, out_mask) > 0.99


@pytest.mark.parametrize("seed", range(6))
def test_random_scale_rotate_flip_crop_stays_aligned(seed):
    image, mask = drawn_pair()
    out_image, out_mask = augment(image, mask, np.random.default_rng([seed, 7]), (80, 80))
    assert out_image.shape == (80, 80, 3) and out_mask.shape == (80, 80)
    assert agreement(out_image, out_mask) > 0.99


def test_agreement_check_detects_a_misaligned_pair():
    image, mask = drawn_pair()
    assert agreement(image[:, ::-1], mask) < 0.8
    assert agreement(*run(Transform(angle=0.2), (96, 128), pair=(image, mask))) > 0.99
    rotated_image, _ = run(Transform(angle=0.2), (96, 128))
    assert agreement(rotated_image, mask) < 0.9


def test_same_seed_same_augmentation_other_seed_differs():
    image, mask = drawn_pair()
    config = AugmentConfig(scale_range=(0.8, 1.5), max_rotation_degrees=10)
    first = augment(image, mask, np.random.default_rng([1, 2]), 64, config)
    again = augment(image, mask, np.random.default_rng([1, 2]), 64, config)
    other = augment(image, mask, np.random.default_rng([3, 4]), 64, config)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_vertical_flips_are_drawn_only_when_enabled_and_leave_other_draws_unchanged():
    image, mask = drawn_pair()
    upside_down = 0
    for seed in range(12):
        plain = random_transform(np.random.default_rng(seed), mask.shape, (96, 128), AugmentConfig())
        with_flips = AugmentConfig(vertical_flip=True)
        drawn = random_transform(np.random.default_rng(seed), mask.shape, (96, 128), with_flips)
        assert not plain.vertical_flip
        for name in ("scale", "angle", "flip", "offset"):
            assert getattr(drawn, name) == getattr(plain, name)
        upside_down += drawn.vertical_flip
        assert agreement(*augment(image, mask, np.random.default_rng(seed), (96, 128), with_flips)) > 0.99
    assert 2 <= upside_down <= 10


def test_colour_jitter_changes_the_image_only_and_repeats_with_the_seed():
    image, mask = drawn_pair()
    plain_image, plain_mask = augment(image, mask, np.random.default_rng(3), 64, AugmentConfig())
    config = AugmentConfig(color_jitter=0.4)
    jittered_image, jittered_mask = augment(image, mask, np.random.default_rng(3), 64, config)
    np.testing.assert_array_equal(jittered_mask, plain_mask)
    assert np.abs(jittered_image - plain_image).mean() > 1.0
    assert 0.0 <= jittered_image.min() and jittered_image.max() <= 255.0
    again = augment(image, mask, np.random.default_rng(3), 64, config)[0]
    np.testing.assert_array_equal(again, jittered_image)
    with pytest.raises(ValueError, match="color_jitter"):
        AugmentConfig(color_jitter=1.0)


def test_letterbox_keeps_aspect_and_pads_with_ignore():
    image, mask = drawn_pair()  # 96x128 -> 48x64 inside 64x64, 8 rows of padding top and bottom
    out_image, out_mask = letterbox_pair(image, mask, 64)
    assert (out_mask[:8] == IGNORE_INDEX).all() and (out_mask[56:] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(out_mask[8:56], mask[1::2, 1::2])  # centre-aligned nearest
    assert agreement(out_image, out_mask) > 0.99


def test_exposure_normalisation_brightens_a_dark_pair_the_same_way_in_training_and_validation():
    image, mask = drawn_pair()
    dark = (image * 0.3).astype(np.float32)  # every colour a third as bright: an under-exposed camera
    target = 110.0
    config = AugmentConfig(scale_range=(1.0, 1.0), max_rotation_degrees=0, horizontal_flip=False,
                           exposure_target_mean=target)
    trained, trained_mask = augment(dark, mask, np.random.default_rng(0), (96, 128), config)
    plain, plain_mask = augment(dark, mask, np.random.default_rng(0), (96, 128),
                                AugmentConfig(scale_range=(1.0, 1.0), max_rotation_degrees=0, horizontal_flip=False))
    np.testing.assert_array_equal(trained_mask, plain_mask)  # the mask never changes
    assert trained.mean() > plain.mean() + 20
    validated, validated_mask = letterbox_pair(dark, mask, (96, 128), exposure_target_mean=target)
    np.testing.assert_array_equal(validated_mask, mask)
    assert np.abs(validated - trained).max() <= 1.0  # uint8 table vs float power: rounding only


def test_bad_augment_config_is_rejected():
    with pytest.raises(ValueError, match="scale_range"):
        AugmentConfig(scale_range=(2.0, 0.5))


def first_batch(driver, dataset, crop_size, batch_size, augment, seed=0, cache=False):
    """The first batch as float32 images and one-hot labels, from the tf.data pipeline or the
    Keras PyDataset (which sends float16 images and uint8 class ids: the losses expand them)."""
    if driver == "tf.data":
        pipeline = make_pipeline(dataset, crop_size, batch_size, augment=augment, seed=seed, cache=cache)
        images, labels = next(iter(pipeline))
        return images.numpy(), labels.numpy()
    images, ids = SegmentationBatches(dataset, crop_size, batch_size, augment=augment, seed=seed, cache=cache)[0]
    assert images.dtype == np.float16 and ids.dtype == np.uint8 and ids.shape == images.shape[:-1]
    return images.astype(np.float32), one_hot(ids, dataset.num_classes)


DRIVERS = ["tf.data", "PyDataset"]


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("augment_flag", [False, True])
def test_pipeline_outputs_normalised_images_and_one_hot_with_zero_ignore_rows(
    folder_root, augment_flag, driver
):
    dataset = get_dataset("folder", root=folder_root)  # 16x24 pairs, row 0 ignored
    images, labels = first_batch(driver, dataset, 32, 2, augment=augment_flag, seed=3)
    assert images.dtype == np.float32 and images.shape == (2, 32, 32, 3)
    assert labels.dtype == np.float32 and labels.shape == (2, 32, 32, 3)
    assert -1.0 <= images.min() and images.max() <= 1.0
    rows = labels.sum(-1)
    assert set(np.unique(rows)) == {0.0, 1.0}
    assert (rows == 0).mean() > 0.2  # the ignored row and the padding
    if not augment_flag:  # letterbox: 16x24 -> 21x32 centred, grey (~0 after normalising) above
        assert np.allclose(images[:, :5], 0.0, atol=0.01) and (rows[:, :5] == 0).all()


@pytest.mark.parametrize("driver", DRIVERS)
def test_pipeline_is_reproducible_with_a_seed(folder_root, driver):
    dataset = get_dataset("folder", root=folder_root)
    images_a, labels_a = first_batch(driver, dataset, 16, 2, augment=True, seed=11, cache=True)
    images_b, labels_b = first_batch(driver, dataset, 16, 2, augment=True, seed=11, cache=True)
    np.testing.assert_array_equal(images_a, images_b)
    np.testing.assert_array_equal(labels_a, labels_b)
    images_c, _ = first_batch(driver, dataset, 16, 2, augment=True, seed=12, cache=True)
    assert not np.array_equal(images_a, images_c)


def test_pydataset_stream_passes_over_every_sample_and_a_resumed_stream_continues(folder_root):
    dataset = get_dataset("folder", root=folder_root)
    stream = SegmentationBatches(dataset, 16, 2, augment=True, seed=5)
    assert stream.num_batches is None
    resumed = SegmentationBatches(dataset, 16, 2, augment=True, seed=5, first_batch=3)
    np.testing.assert_array_equal(resumed[0][0], stream[3][0])

    ten = SimpleNamespace(samples=list(range(10)), num_classes=2)  # order only: no pixels
    stream = SegmentationBatches(ten, 16, 3, augment=True, seed=5)
    stream._example = lambda index, rng: (np.array(index), np.array(0))
    assert stream.batches_per_pass == 3  # the partial last batch is dropped
    passes = [
        np.concatenate([stream[p * 3 + b][0] for b in range(3)]).tolist() for p in range(2)
    ]
    for indices in passes:  # nine distinct samples per pass
        assert len(indices) == len(set(indices)) == 9
    assert passes[0] != passes[1]  # reshuffled between passes

    validation = SegmentationBatches(dataset, 16, 3, augment=False)
    assert validation.num_batches == -(-len(dataset.samples) // 3)
    last_images, _ = validation[validation.num_batches - 1]
    assert len(last_images) == len(dataset.samples) - 3 * (validation.num_batches - 1)


def test_loader_processes_start_with_every_frame_decoded_and_make_the_same_batches(folder_root):
    """Forked loaders inherit the cache filled before the fork; how batches are made never changes them."""
    dataset = get_dataset("folder", root=folder_root)
    threads = SegmentationBatches(dataset, 16, 2, augment=True, seed=7, cache=True)
    processes = SegmentationBatches(dataset, 16, 2, augment=True, seed=7, cache=True, workers=3, processes=True)
    assert len(processes._cache) == len(dataset.samples) and not threads._cache
    assert (processes.workers, processes.use_multiprocessing, processes.max_queue_size) == (3, True, 10)
    for made_by_threads, made_by_processes in zip(threads[1], processes[1]):
        np.testing.assert_array_equal(made_by_threads, made_by_processes)


def test_pipeline_reports_a_size_mismatch_with_both_paths(kvasir_root):
    import tensorflow as tf

    save_gray(kvasir_root / "masks" / "polyp1.png", np.zeros((5, 5), np.uint8))
    dataset = get_dataset("kvasir", root=kvasir_root)
    mismatch = r"polyp1\.jpg is 40x30 .*polyp1\.png is 5x5"
    with pytest.raises(tf.errors.OpError, match=mismatch):
        next(iter(make_pipeline(dataset, 16, 1, augment=True)))
    with pytest.raises(ValueError, match=mismatch):
        SegmentationBatches(dataset, 16, len(dataset.samples), augment=True)[0]


def test_inference_letterbox_pads_like_the_training_pipeline():
    """Evaluation and the service pad with the value training padded with (0 after normalising):
    black padding moved the image-pooling branch's global average and cost ~0.1 CamVid mIoU."""
    import numpy as np

    from modelcard.geometry import letterbox
    from training.datasets.augment import IMAGE_FILL

    canvas, placement = letterbox(np.zeros((10, 20, 3), np.uint8), (20, 20))
    assert placement.top == 5
    assert abs(canvas[0, 0, 0] / 127.5 - 1.0 - (IMAGE_FILL / 127.5 - 1.0)) < 0.01
