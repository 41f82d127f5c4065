"""Does the uncertainty map point at the errors, and does the drift signal move on foreign images?

    python -m benchmarks.uncertainty --card engines/polyp.json --dataset kvasir --images 20

Runs the card's ONNX file on the first N validation images the way the service does (letterbox,
bilinear restore to the original size, labels = argmax), takes the normalised entropy from
service/uncertainty.py, and prints two Markdown tables for docs/UNCERTAINTY.md: the error rate
of the 10 % highest-entropy pixels against the other 90 %, and each image's mean confidence
(the `seg_image_confidence_ratio` drift metric) for the images as they are, with their pixels
shuffled and with their colours inverted. It also times what the drift metric costs per request:
fetching the probabilities next to the labels (alternating runs of the same image) and computing
the statistics.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from modelcard.card import INPUT_NAME, LABELS_NAME, PROBABILITIES_NAME, load_card
from modelcard.geometry import crop, letterbox, resize_channels
from modelcard.onnx_runner import OnnxRunner
from service.uncertainty import image_statistics, normalised_entropy
from training.datasets import IGNORE_INDEX, get_dataset

TOP_SHARE = 0.10
FETCH_RUNS = 10


def shuffled(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same pixels in random places: colour statistics kept, every structure gone."""
    flat = image.reshape(-1, 3).copy()
    rng.shuffle(flat)
    return flat.reshape(image.shape)


def inverted(image: np.ndarray) -> np.ndarray:
    return 255 - image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--card", default="engines/polyp.json")
    parser.add_argument("--dataset", default="kvasir")
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    card = load_card(args.card)
    runner = OnnxRunner(card.onnx_path, threads=args.threads)
    dataset = get_dataset(args.dataset, split=args.split)
    rng = np.random.default_rng(0)
    top_errors = top_pixels = rest_errors = rest_pixels = 0
    confidences: dict[str, list[float]] = {"as is": [], "pixels shuffled": [], "colours inverted": []}
    statistics_s: list[float] = []
    for sample in dataset.samples[: args.images]:
        image, truth = dataset.load_sample(sample)
        for variant, pixels in (("as is", image), ("pixels shuffled", shuffled(image, rng)),
                                ("colours inverted", inverted(image))):
            canvas, placement = letterbox(pixels, card.input_size)
            probabilities, labels = runner(canvas[None])
            started = time.perf_counter()
            statistics = image_statistics(crop(probabilities[0], placement),
                                          crop(labels[0], placement), card.num_classes)
            statistics_s.append(time.perf_counter() - started)
            confidences[variant].append(statistics.mean_confidence)
            if variant != "as is":
                continue
            restored = resize_channels(crop(probabilities[0], placement), image.shape[:2])
            entropy = normalised_entropy(restored)
            valid = truth != IGNORE_INDEX  # the readers map every ignored pixel to it
            wrong = (restored.argmax(axis=-1) != truth)[valid]
            entropy = entropy[valid]
            cut = np.quantile(entropy, 1.0 - TOP_SHARE)
            top = entropy > cut
            top_errors += int(wrong[top].sum())
            top_pixels += int(top.sum())
            rest_errors += int(wrong[~top].sum())
            rest_pixels += int((~top).sum())

    print(f"{card.name}: {args.images} {args.dataset} {args.split} images at the original resolution\n")
    print("| pixels | share of pixels | error rate | share of all errors |")
    print("|---|---|---|---|")
    errors = top_errors + rest_errors
    for name, wrong, count in (("top 10 % entropy", top_errors, top_pixels), ("other 90 %", rest_errors, rest_pixels)):
        print(f"| {name} | {count / (top_pixels + rest_pixels):.3f} | {wrong / count:.4f} | "
              f"{wrong / max(1, errors):.3f} |")
    print("\n| images | mean confidence | min | max |")
    print("|---|---|---|---|")
    for variant, values in confidences.items():
        print(f"| {variant} | {np.mean(values):.3f} | {np.min(values):.3f} | {np.max(values):.3f} |")
    print(f"\ndrift statistics per image (stride-4 grid, model resolution): "
          f"{1000 * np.median(statistics_s):.2f} ms median")
    canvas = letterbox(dataset.load_sample(dataset.samples[0])[0], card.input_size)[0][None]
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for run in range(2 * FETCH_RUNS + 2):
        fetch = bool(run % 2)
        names = [LABELS_NAME, PROBABILITIES_NAME] if fetch else [LABELS_NAME]
        started = time.perf_counter()
        runner.session.run(names, {INPUT_NAME: canvas})
        if run >= 2:  # the first of each is a warm-up
            seconds[fetch].append(time.perf_counter() - started)
    print(f"inference, batch 1, {FETCH_RUNS} alternating runs each: labels only "
          f"{1000 * np.median(seconds[False]):.1f} ms median, labels + probabilities "
          f"{1000 * np.median(seconds[True]):.1f} ms median")


if __name__ == "__main__":
    main()
