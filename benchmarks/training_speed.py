"""python -m benchmarks.training_speed: training images/s and peak memory for fp32 vs mixed
precision (float16, as `--mixed-precision` trains, and bfloat16, which CPUs with AMX or AVX512-BF16
have units for), with and without gradient checkpointing, and XLA compilation forced on (Keras
leaves it off on CPU-only TensorFlow), measured side by side in one run.

Each configuration trains in its own process (so its peak resident memory is its own) on real
Kvasir-SEG crops through the real pipeline, and times only the steps after compilation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# name -> (Keras dtype policy, gradient checkpointing, Model.compile's jit_compile); training's
# --mixed-precision is the mixed_float16 policy.
CONFIGURATIONS = {
    "fp32": ("float32", False, "auto"),
    "mixed precision": ("mixed_float16", False, "auto"),
    "mixed bfloat16": ("mixed_bfloat16", False, "auto"),
    "gradient checkpointing": ("float32", True, "auto"),
    "mixed + checkpointing": ("mixed_float16", True, "auto"),
    "XLA (jit_compile)": ("float32", False, True),
}


def measure(policy: str, gradient_checkpointing: bool, jit_compile: bool | str, crop: int, batch: int,
            steps: int, warmup: int) -> dict:
    """Runs in the child: build, compile, train ``warmup`` steps untimed, then ``steps`` timed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from training.datasets import get_dataset, make_pipeline
    from training.losses import make_loss
    from training.model import build_deeplab

    keras.mixed_precision.set_global_policy(policy)
    dataset = get_dataset("kvasir", split="train")
    data = iter(make_pipeline(dataset, crop, batch, augment=True, repeat=True, seed=0, max_side=512))
    model = build_deeplab(dataset.num_classes, input_size=(crop, crop),
                          gradient_checkpointing=gradient_checkpointing)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=make_loss("dice_focal"),
                  jit_compile=jit_compile)
    batches = [next(data) for _ in range(warmup + steps)]
    for images, labels in batches[:warmup]:
        model.train_on_batch(images, labels)
    started = time.perf_counter()
    for images, labels in batches[warmup:]:
        model.train_on_batch(images, labels)
    elapsed = time.perf_counter() - started
    return {"images_per_s": steps * batch / elapsed,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (compilation) first")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        policy, gradient_checkpointing, jit_compile = json.loads(args.child)
        result = measure(policy, gradient_checkpointing, jit_compile, args.crop, args.batch, args.steps, args.warmup)
        print(json.dumps(result))
        return
    results = {}
    for name, configuration in CONFIGURATIONS.items():
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.training_speed", "--crop", str(args.crop), "--batch", str(args.batch),
             "--steps", str(args.steps), "--warmup", str(args.warmup), "--child", json.dumps(configuration)],
            capture_output=True, text=True, check=True)
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"measured {name}", file=sys.stderr, flush=True)
    base = results["fp32"]
    print(f"MobileNetV2 DeepLabv3+, {args.crop}px crops, batch {args.batch}, {args.steps} timed steps, "
          f"{os.cpu_count()} CPUs")
    print(f"{'configuration':<24}{'images/s':>10}{'vs fp32':>9}{'peak RSS MB':>13}{'vs fp32':>9}")
    for name, result in results.items():
        print(f"{name:<24}{result['images_per_s']:>10.2f}{result['images_per_s'] / base['images_per_s']:>8.2f}x"
              f"{result['peak_rss_mb']:>13.0f}{result['peak_rss_mb'] / base['peak_rss_mb']:>8.2f}x")


if __name__ == "__main__":
    main()
