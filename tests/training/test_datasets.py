"""Dataset readers on the real data and on tiny fixtures in each real format."""

import numpy as np
import pytest
from PIL import Image

from tests.support.images import save_gray, save_rgb
from training.datasets import IGNORE_INDEX, class_pixel_counts, get_dataset, split_mean_brightness


@pytest.mark.parametrize(
    "name, split, count", [("kvasir", "train", 800), ("kvasir", "val", 100),
                           ("camvid", "train", 367), ("camvid", "val", 101)],
)  # fmt: skip
def test_real_split_sizes(real_data_root, name, split, count):
    assert len(get_dataset(name, split=split).samples) == count


def test_kvasir_masks_are_binary_class_ids(real_data_root):
    dataset = get_dataset("kvasir", split="val")
    assert dataset.classes == ["background", "polyp"] and dataset.ignore_index is None
    image, mask = dataset.load_sample(dataset.samples[0])
    assert image.dtype == np.uint8 and image.shape == (*mask.shape, 3)
    assert set(np.unique(mask)) == {0, 1}


def test_kvasir_max_side_downscales_image_and_mask_together(real_data_root):
    dataset = get_dataset("kvasir", split="val")
    image, mask = dataset.load_sample(dataset.samples[0], max_side=128)
    assert max(mask.shape) == 128 and image.shape[:2] == mask.shape
    full = dataset.load_mask(dataset.samples[0].mask_path)
    assert abs(mask.mean() - full.mean()) < 0.02  # same polyp fraction after downscaling


def test_camvid_void_becomes_ignore(real_data_root):
    dataset = get_dataset("camvid", split="val")
    assert dataset.num_classes == 11 and dataset.classes[0] == "sky" and dataset.ignore_index == 255
    assert dataset.palette[3] == (128, 64, 128)  # road
    raw = np.asarray(Image.open(dataset.samples[0].mask_path))
    mask = dataset.load_mask(dataset.samples[0].mask_path)
    assert (raw == 11).any()
    np.testing.assert_array_equal(mask == IGNORE_INDEX, raw == 11)
    np.testing.assert_array_equal(mask[raw < 11], raw[raw < 11])


def test_voc_palette_png_reads_as_indices_with_ignore_border(voc_root):
    dataset = get_dataset("voc", root=voc_root)
    assert dataset.num_classes == 21 and dataset.palette[15] == (192, 128, 128)  # person
    mask = dataset.load_mask(dataset.samples[0].mask_path)
    assert mask[10, 10] == 15 and mask[10, 5] == IGNORE_INDEX and mask[0, 0] == 0
    assert set(np.unique(dataset.load_mask(dataset.samples[1].mask_path))) == {0, 20, 255}


def test_cityscapes_label_ids_map_to_train_ids(cityscapes_root):
    dataset = get_dataset("cityscapes", root=cityscapes_root)
    assert dataset.num_classes == 19 and dataset.classes[13] == "car"
    mask = dataset.load_mask(dataset.samples[0].mask_path)
    # labelIds road 7, car 26, bicycle 33, unlabeled 0, static 4, trailer 30
    np.testing.assert_array_equal(mask[0, ::2], [0, 13, 18, 255, 255, 255])


def test_folder_reads_splits_and_classes(folder_root):
    train = get_dataset("folder", root=folder_root)
    assert [s.image_path.stem for s in train.samples] == ["a", "c"]
    assert train.classes == ["background", "road", "car"] and len(train.palette) == 3
    val = get_dataset("folder", root=folder_root, split="val", classes=["bg", "x", "y"])
    assert val.classes == ["bg", "x", "y"]
    image, mask = val.load_sample(val.samples[0])
    assert image.shape == (16, 24, 3) and set(np.unique(mask)) == {0, 2, 255}


def test_class_pixel_counts_skip_ignore(folder_root):
    counts = class_pixel_counts(get_dataset("folder", root=folder_root))
    # per image: row 0 ignored, 15 rows x 12 columns of class 0 and of class 2
    np.testing.assert_array_equal(counts, [2 * 180, 0, 2 * 180])


def test_split_mean_brightness_is_the_mean_of_the_training_images_own_means(folder_root):
    from modelcard.exposure import mean_brightness

    dataset = get_dataset("folder", root=folder_root)
    expected = np.mean([mean_brightness(dataset.load_image(sample.image_path)) for sample in dataset.samples])
    assert split_mean_brightness(dataset) == pytest.approx(expected)
    assert len(dataset.samples) == 2 and 0 < expected < 255


def test_missing_root_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        get_dataset("camvid", root=tmp_path / "nowhere")


def test_missing_split_file_names_it(kvasir_root):
    with pytest.raises(FileNotFoundError, match=r"splits/test\.txt"):
        get_dataset("kvasir", root=kvasir_root, split="test")


def test_missing_mask_names_it(kvasir_root):
    (kvasir_root / "masks" / "polyp1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"mask not found: .*masks/polyp1\.png"):
        get_dataset("kvasir", root=kvasir_root)


def test_size_mismatch_names_both_files(kvasir_root):
    save_gray(kvasir_root / "masks" / "polyp1.png", np.zeros((31, 40), np.uint8))
    dataset = get_dataset("kvasir", root=kvasir_root)
    expected = r"images/polyp1\.jpg is 40x30 .*masks/polyp1\.png is 40x31"
    with pytest.raises(ValueError, match=expected):
        dataset.load_sample(dataset.samples[0])


def test_unexpected_mask_value_names_file(folder_root):
    save_gray(folder_root / "masks" / "a.png", np.full((16, 24), 7, np.uint8))
    dataset = get_dataset("folder", root=folder_root)
    with pytest.raises(ValueError, match=r"masks/a\.png has values \[7\]"):
        dataset.load_mask(dataset.samples[0].mask_path)


def test_rgb_mask_is_rejected_with_its_path(folder_root):
    save_rgb(folder_root / "masks" / "c.png", 16, 24)
    dataset = get_dataset("folder", root=folder_root)
    with pytest.raises(ValueError, match=r"masks/c\.png has mode RGB"):
        dataset.load_sample(dataset.samples[1])


def test_unknown_dataset_and_folder_without_root():
    with pytest.raises(ValueError, match="unknown dataset 'coco'"):
        get_dataset("coco")
    with pytest.raises(ValueError, match="pass root="):
        get_dataset("folder")
