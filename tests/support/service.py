"""Real service processes for tests: a models directory, `python -m service` on a free port, the ONNX reference.

Shared by the service, reliability and demo tests (their conftests expose the fixtures in
`tests/support/fixtures.py`).

The models directory is `$SERVICE_TEST_MODELS` if set, else `engines/` when it holds model cards
with their ONNX files; otherwise two small untrained DeepLabv3+ models (2-class "polyp", 11-class
"camvid", MobileNetV2 alpha 0.35 at 128x128) are exported with the real exporter (about a minute),
so the service always sees graphs and cards exactly as training writes them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from benchmarks.processes import free_port, launch
from modelcard.card import ModelCard, load_card, sha256_file
from modelcard.files import find_cards

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CAMVID_CLASSES = [
    ("sky", (128, 128, 128)), ("building", (128, 0, 0)), ("pole", (192, 192, 128)), ("road", (128, 64, 128)),
    ("pavement", (60, 40, 222)), ("tree", (128, 128, 0)), ("sign", (192, 128, 128)), ("fence", (64, 64, 128)),
    ("car", (64, 0, 128)), ("pedestrian", (64, 64, 0)), ("bicyclist", (0, 128, 192)),
]
TINY_MODELS = {  # name -> (dataset, classes, ignore index)
    "polyp": ("kvasir", [("background", (0, 0, 0)), ("polyp", (255, 0, 0))], None),
    "camvid": ("camvid", CAMVID_CLASSES, 11),
}
STARTUP_TIMEOUT_S = 120


def shipped_models() -> Path | None:
    engines = Path(os.environ.get("SERVICE_TEST_MODELS", PROJECT_ROOT / "engines"))
    cards = find_cards(engines) if engines.is_dir() else []
    if cards and all(load_card(card).onnx_path.is_file() for card in cards):
        return engines
    return None


def export_tiny_models(directory: Path) -> Path:
    """Export TINY_MODELS, untrained, at 128x128 with python -m training.export into `directory`/engines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training import export
    from training.config import TrainConfig
    from training.model import build_deeplab

    engines = directory / "engines"
    for name, (dataset, classes, ignore_index) in TINY_MODELS.items():
        run = directory / f"run-{name}"
        run.mkdir(parents=True)
        config = {**TrainConfig(run_name=name, dataset=dataset, backbone_options={"alpha": 0.35}).to_dict(),
                  "num_classes": len(classes), "classes": [c for c, _ in classes],
                  "palette": [list(p) for _, p in classes], "ignore_index": ignore_index}
        (run / "config.json").write_text(json.dumps(config))
        model = build_deeplab(len(classes), backbone="mobilenetv2", input_size=(128, 128),
                              backbone_options={"alpha": 0.35})
        model.save_weights(run / "best.weights.h5")
        export.main(["--checkpoint_path", str(run), "--output_dir", str(directory / f"export-{name}"),
                     "--onnx", "--input-size", "128", "--name", name, "--parity-images", "1",
                     "--engines-dir", str(engines)])
    return engines


def models_for_tests(session_tmp: Path) -> Path:
    """The models the tests serve: the shipped ones if there are, else `tiny_models()`."""
    return shipped_models() or tiny_models(session_tmp)


def tiny_models(session_tmp: Path) -> Path:
    """TINY_MODELS, exported once per session into `session_tmp`/tiny-models, or the export in
    `$SERVICE_TEST_TINY_MODELS` (a directory an earlier `export_tiny_models` wrote: saves a minute a session).
    For tests that load, reload and swap models many times, where 512x512 models would take minutes."""
    reused = os.environ.get("SERVICE_TEST_TINY_MODELS")
    if reused:
        return Path(reused) / "engines"
    directory = session_tmp / "tiny-models"
    engines = directory / "engines"
    if not engines.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        export_tiny_models(directory)
    return engines


def add_version(repo: Path, card: ModelCard, version: int | None, edit=None, onnx: bytes | None = None) -> Path:
    """Copy `card` and its ONNX file into the model repository `repo` as `version` (flat when None), optionally
    changed: `edit` the card's JSON, or write `onnx` bytes instead of the file (the card's sha256 follows)."""
    directory = repo if version is None else repo / card.name / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = directory / card.onnx_path.name
    if onnx is None:
        shutil.copy2(card.onnx_path, onnx_path)
    else:
        onnx_path.write_bytes(onnx)
    data = json.loads(card.path.read_text())
    data["files"]["onnx_sha256"] = sha256_file(onnx_path)
    if edit is not None:
        edit(data)
    (directory / card.path.name).write_text(json.dumps(data))
    return directory


@dataclass
class ServiceProcess:
    """`python -m <module>` (the service by default) in a child process, with its own port, settings and log."""

    models: Path
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    module: str = "service"  # an entry point that wraps the service's, e.g. to inject faults
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> ServiceProcess:
        env = {"SEG_CRF__WORKERS": "1", "SEG_ONNX__INTRA_OP_THREADS": "2", **self.env}
        module_args = [self.module, "--models", str(self.models), "--backend", "onnx-cpu", "--log-level", "warning",
                       *self.args]
        self.log = self.log_path.open("wb")
        self.process = launch(module_args, self.port, self.log, env)
        if wait_ready:
            self.wait_until(lambda response: response.status_code == 200)
        return self

    def wait_until(self, accept, path: str = "/readyz", timeout_s: float = STARTUP_TIMEOUT_S,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.logs()}")
            try:
                last = httpx.get(self.url + path, timeout=5, headers=headers)
                if accept(last):
                    return last
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{path} never satisfied the condition (last: {last and last.text}):\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM, then wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self.log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate()
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def run_onnx(card: ModelCard, canvas: np.ndarray) -> np.ndarray:
    """Labels from running the card's ONNX file directly (the reference the service must agree with)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(card.onnx_path), providers=["CPUExecutionProvider"])
    return session.run([card.outputs.labels.name], {card.input.name: canvas[None]})[0][0]
