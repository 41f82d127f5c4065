"""The models this process serves: cards found in the models directory -> warmed-up backends -> batchers.

Loading runs in the background after start-up so that `/healthz` answers while engines load;
`/readyz` turns 200 once every card's model is loaded and warmed up, and reports per model what
failed and why. A model is warmed up at the largest batch it will run, fetching both outputs, so
first requests pay no lazy initialisation and ONNX Runtime's arena reaches its working size
before traffic arrives; the warm-up also checks the model's class count against the card.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from service import telemetry
from service.backends import Backend, load_backend
from service.batching import Batcher, BatchPolicy, policy_for
from service.errors import ServiceError
from service.settings import Settings
from training.model_card import ModelCard, ModelCardError, load_card

log = logging.getLogger(__name__)
UNHEALTHY_AFTER_FAILURES = 3  # consecutive failed batches before /healthz reports the backend broken


@dataclass
class ModelEntry:
    """One card and, once loaded, its backend and batcher."""

    name: str
    card_path: Path
    card: ModelCard | None = None
    status: Literal["loading", "ready", "failed"] = "loading"
    error: str | None = None
    backend: Backend | None = None
    batcher: Batcher | None = None

    @property
    def policy(self) -> BatchPolicy | None:
        return self.batcher.policy if self.batcher else None


@dataclass
class ModelRegistry:
    settings: Settings
    entries: dict[str, ModelEntry] = field(default_factory=dict)
    problem: str | None = None  # a failure that is not any one model's (e.g. no models directory)

    def discover(self) -> None:
        """Read every card; a card that cannot be read becomes a failed entry that says why."""
        models_dir = self.settings.models
        if not models_dir.is_dir():
            self.problem = f"models directory {models_dir} does not exist"
            return
        paths = find_cards(models_dir)
        if not paths:
            self.problem = f"no model cards (*.json) in {self.settings.models}"
        for path in paths:
            try:
                card = load_card(path)
            except ModelCardError as exc:
                self.entries[path.stem] = ModelEntry(path.stem, path, status="failed", error=str(exc))
                continue
            if card.name in self.entries:
                self.entries[f"{card.name}@{path.name}"] = ModelEntry(
                    card.name, path, status="failed", error=f"{path}: model name {card.name!r} is used by another card")
                continue
            self.entries[card.name] = ModelEntry(card.name, path, card=card)
        default = self.settings.default_model
        if default is not None and default not in self.entries:
            self.problem = f"default model {default!r} has no card in {models_dir}"

    async def load_all(self) -> None:
        """Load, warm up and start every discovered model, one at a time (engines compete for memory)."""
        for entry in self.entries.values():
            if entry.status != "loading":
                continue
            try:
                backend = None
                backend = await asyncio.to_thread(load_backend_checked, entry.card, self.settings)
                policy = policy_for(backend, self.settings.batching)
                await asyncio.to_thread(warm_up, backend, entry.card, policy.max_batch_size)
            except Exception as exc:  # noqa: BLE001 - a model that fails to load must not stop the others
                log.exception("model %s failed to load", entry.name)
                if backend is not None:  # loaded but failed its warm-up: free its device memory
                    await asyncio.to_thread(backend.close)
                entry.status, entry.error = "failed", f"{type(exc).__name__}: {exc}"
                continue
            entry.backend, entry.batcher = backend, Batcher(entry.name, backend, policy)
            entry.batcher.start()
            entry.status = "ready"
            telemetry.MODEL_INFO.labels(model=entry.name, backend=backend.name, precision=backend.precision).set(1)
            log.info("model %s ready on %s (%s), batching %s", entry.name, backend.name, backend.precision, policy)

    @property
    def ready(self) -> bool:
        return self.problem is None and bool(self.entries) and all(e.status == "ready" for e in self.entries.values())

    def failing_models(self) -> list[str]:
        """Models whose backend keeps failing (a broken device wants a restart, not retries)."""
        return [
            name for name, e in self.entries.items()
            if e.batcher is not None and e.batcher.consecutive_failures >= UNHEALTHY_AFTER_FAILURES
        ]

    def default_name(self) -> str | None:
        if self.settings.default_model is not None:
            return self.settings.default_model
        return next(iter(sorted(self.entries)), None)

    def get(self, name: str | None) -> ModelEntry:
        """The ready model called `name` (or the default): 404 if unknown, 503 if not (yet) usable."""
        if not self.entries:
            raise ServiceError(503, "no_models", self.problem or "no models are configured")
        name = name or self.default_name()
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self.entries)) or "none"
            raise ServiceError(404, "model_not_found", f"no model named {name!r}; models: {known}")
        if entry.status == "loading":
            raise ServiceError(503, "model_loading", f"model {name!r} is still loading", {"Retry-After": "5"})
        if entry.status == "failed":
            raise ServiceError(503, "model_unavailable", f"model {name!r} failed to load: {entry.error}")
        return entry

    async def close(self) -> None:
        """Drain every queue, then release the engines."""
        await asyncio.gather(*(e.batcher.close() for e in self.entries.values() if e.batcher))
        for entry in self.entries.values():
            if entry.backend is not None:
                entry.backend.close()
                entry.backend = None


def find_cards(models_dir: Path) -> list[Path]:
    """Every model card in `models_dir`, by name; TensorRT plan sidecars (`*.plan.json`) are not cards."""
    return [path for path in sorted(models_dir.glob("*.json")) if not path.name.endswith(".plan.json")]


def load_backend_checked(card: ModelCard, settings: Settings) -> Backend:
    """The card's ONNX file must exist and match its recorded sha256 before any engine loads it."""
    load_card(card.path, verify_files=True)
    return load_backend(card, settings)


def warm_up(backend: Backend, card: ModelCard, batch_size: int) -> None:
    """Run the largest batch the model will see, both fetches, and check the shapes against the card."""
    images = np.full((batch_size, *card.input_size, 3), 128, dtype=np.uint8)
    result = backend.infer(images, want_probabilities=True)
    expected = (batch_size, *card.input_size)
    if result.labels.shape != expected or result.probabilities is None:
        raise ValueError(f"{card.name}: warm-up labels have shape {result.labels.shape}, expected {expected}")
    if result.probabilities.shape != (*expected, card.num_classes):
        raise ValueError(
            f"{card.name}: the model outputs {result.probabilities.shape[-1]} classes, "
            f"the card lists {card.num_classes}"
        )
    backend.infer(images, want_probabilities=False)
