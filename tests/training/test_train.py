"""End-to-end training on real images: the loss goes down, runs resume, and two
MultiWorkerMirrored worker processes train one shared model."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelcard.card import sha256_file
from training.checkpoint import load_model, record_stage, resolve_checkpoint
from training.config import parse_args, train_command

ROOT = Path(__file__).resolve().parents[2]
SMALL_RUN = ["--dataset", "kvasir", "--backbone", "mobilenetv2", "--backbone-options", '{"alpha": 0.35}',
             "--crop-size", "64", "--max-side", "96", "--batch-size", "4", "--validation-steps", "1",
             "--optimizer", "adamw", "--learning-rate", "0.003", "--warmup-epochs", "0"]


# As on the GPU machines: `import tensorflow` fails, and tensorflow never enters sys.modules
# (Keras checks sys.modules to decide whether it runs inside a TensorFlow graph).
WITHOUT_TENSORFLOW = """
import sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")

sys.meta_path.insert(0, NoTensorFlow())
from training.train import main
main(sys.argv[1:])
"""


def _run_training(args, env=None, timeout=300, without_tensorflow=False):
    command = ["-c", WITHOUT_TENSORFLOW] if without_tensorflow else ["-m", "training.train"]
    return subprocess.run([sys.executable, *command, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _history(run_dir: Path) -> list[dict]:
    lines = (run_dir / "history.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]


@pytest.mark.usefixtures("real_data_root")
def test_few_steps_on_real_images_lower_the_loss_and_resume(tmp_path):
    common = SMALL_RUN + ["--checkpoint-dir", str(tmp_path), "--run-name", "tiny", "--steps-per-epoch", "8"]
    # Stage 1 stops after 3 of its 5 scheduled epochs; stage 2 resumes it with a 4-epoch schedule.
    first = _run_training(common + ["--epochs", "5", "--stop-after-epoch", "3"])
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "tiny"
    history = _history(run_dir)
    assert len(history) == 3
    assert history[-1]["loss"] < history[0]["loss"]
    for name in ("config.json", "best.weights.h5", "last.weights.h5", "state.json", "stages.json"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["classes"] == ["background", "polyp"] and config["crop_size"] == 64

    resumed = _run_training(common + ["--epochs", "4"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    assert len(_history(run_dir)) == 4
    assert json.loads((run_dir / "state.json").read_text())["epochs_done"] == 4

    # Both stages are on record, the cut-short one with where it stopped, so the model card
    # replays exactly these epochs; resuming a stage unchanged adds no stage.
    first_stage, second_stage = (train_command(parse_args(common + ["--epochs", epochs]).to_dict())
                                 for epochs in ("5", "4"))
    record_stage(run_dir, {**parse_args(common + ["--epochs", "4"]).to_dict(), "max_minutes": 5.0}, from_epoch=4)
    assert resolve_checkpoint(run_dir).training_commands == [f"{first_stage} --stop-after-epoch 3", second_stage]

    # A fine-tuning run at a larger crop, normalising exposure, starts from this run's best
    # weights. At learning rate 0 its convolution kernels stay exactly the loaded ones (only BN
    # statistics move), and its reproduce commands are the parent's followed by its own.
    fine_tune_args = SMALL_RUN + ["--checkpoint-dir", str(tmp_path), "--run-name", "tiny-ft", "--init-weights",
                                  str(run_dir), "--crop-size", "96", "--epochs", "1", "--steps-per-epoch", "1",
                                  "--learning-rate", "0", "--final-learning-rate", "0", "--normalise-exposure", "true"]
    fine_tune = _run_training(fine_tune_args)
    assert fine_tune.returncode == 0, fine_tune.stderr[-3000:]
    parent, child = resolve_checkpoint(run_dir), resolve_checkpoint(tmp_path / "tiny-ft" / "last.weights.h5")
    assert child.config["init_weights_sha256"] == sha256_file(parent.weights_path)
    # The target the card will name: Kvasir train's mean brightness (about 95), cached for resuming.
    cached = json.loads((tmp_path / "tiny-ft" / "exposure.json").read_text())
    assert child.config["exposure_target_mean"] == cached["exposure_target_mean"]
    assert 80 < cached["exposure_target_mean"] < 110 and "exposure_target_mean" not in parent.config
    kernels = _kernels(parent)
    assert len(kernels) > 50 and kernels == _kernels(child)
    assert child.training_commands == [*parent.training_commands, train_command(parse_args(fine_tune_args).to_dict())]
    into_itself = _run_training(common + ["--epochs", "4", "--init-weights", str(run_dir)])
    assert into_itself.returncode != 0 and "is this run itself" in into_itself.stderr


def _kernels(checkpoint) -> list[bytes]:
    model = load_model(checkpoint, (64, 64))
    return [weight.numpy().tobytes() for weight in model.weights if weight.path.endswith("kernel")]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.usefixtures("real_data_root")
def test_two_multiworker_processes_train_one_model(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    args = SMALL_RUN + ["--checkpoint-dir", str(tmp_path), "--run-name", "mw", "--strategy", "multiworker",
                        "--steps-per-epoch", "3", "--epochs", "1", "--batch-size", "2"]
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "CUDA_VISIBLE_DEVICES": "-1"}
        workers.append(subprocess.Popen([sys.executable, "-m", "training.train", *args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=600)[0])
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            pytest.fail("multi-worker training hung")
    assert all(w.returncode == 0 for w in workers), "\n---\n".join(o[-3000:] for o in outputs)
    summaries = [json.loads((tmp_path / "mw" / "workers" / f"worker-{i}.json").read_text()) for i in range(2)]
    assert all(s["replicas"] == 2 for s in summaries), "each worker must see a 2-replica cluster"
    assert all(s["steps_run"] == 3 for s in summaries)
    # Synchronous all-reduce: both workers end with bit-identical weights, one model.
    assert summaries[0]["weights_sha256"] == summaries[1]["weights_sha256"]
    assert (tmp_path / "mw" / "last.weights.h5").is_file()


def test_resumed_run_keeps_the_earlier_best_score(tmp_path):
    from training.train import _best_so_far

    assert _best_so_far(tmp_path, "val_dice") is None
    (tmp_path / "history.csv").write_text("epoch,loss,val_dice\n0,0.9,0.41\n1,0.8,0.57\n2,0.7,0.52\n")
    assert _best_so_far(tmp_path, "val_dice") == 0.57
    assert _best_so_far(tmp_path, "val_miou") is None


@pytest.mark.usefixtures("real_data_root")
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed in this environment")
def test_jax_backend_trains_without_tensorflow_resumes_and_writes_weights_tensorflow_loads(tmp_path):
    """The GPU machines have JAX, not TensorFlow: training must run on Keras's JAX backend with
    TensorFlow unimportable (the PyDataset input pipeline), and its checkpoint must load into the
    TensorFlow-backed export and evaluation code."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    common = SMALL_RUN + ["--checkpoint-dir", str(tmp_path), "--run-name", "jax", "--steps-per-epoch", "8",
                          "--vertical-flip", "--color-jitter", "0.2"]
    first = _run_training(common + ["--epochs", "3", "--stop-after-epoch", "2"], env=env, without_tensorflow=True)
    assert first.returncode == 0, first.stderr[-3000:]
    mirrored = _run_training(common + ["--strategy", "mirrored"], env=env, without_tensorflow=True)
    assert mirrored.returncode != 0 and "needs KERAS_BACKEND=tensorflow" in mirrored.stderr
    # The last epoch's batches come from forked loader processes (a GPU host's setting).
    resumed = _run_training(common + ["--epochs", "3", "--loader-processes", "--loader-workers", "2"], env=env,
                            without_tensorflow=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    history = _history(tmp_path / "jax")
    assert len(history) == 3 and history[-1]["loss"] < history[0]["loss"]
    assert all(float(epoch["epoch_seconds"]) > 0 for epoch in history)
    model = load_model(resolve_checkpoint(tmp_path / "jax"), (64, 64))
    logits = model(np.zeros((1, 64, 64, 3), "float32"))
    assert tuple(logits.shape) == (1, 64, 64, 2)
