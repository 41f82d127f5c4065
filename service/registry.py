"""The models this process serves: repository versions -> warmed-up backends -> batchers, swapped atomically.

Loading runs in the background after start-up so that `/healthz` answers while engines load;
`/readyz` turns 200 once every model has a version serving, and reports per model what failed and
why. A version is warmed up at the largest batch it will run, as many batches at once as will run
at once, fetching both outputs, so first requests pay no lazy initialisation and ONNX Runtime's
arena reaches its working size before traffic arrives; the warm-up also checks the model's class
count against the card.

Which versions serve follows Triton's `latest` policy: the `model_versions` highest versions on
disk; a request without a version gets the highest one that is ready. A new or replaced version
loads and warms up beside the one serving; only when it is ready does it take new requests; the
versions it supersedes then stop taking requests, finish the ones they hold (`use()` counts them)
and release their engines. A version that fails to load changes nothing that serves: the failure
is kept beside the model for `/readyz`, `/v1/models` and `seg_model_loads_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from modelcard.card import ModelCard, ModelCardError, load_card
from service import telemetry
from service.backends import Backend, load_backend
from service.batching import Batcher, BatchPolicy, policy_for
from service.errors import ServiceError
from service.repository import Fingerprint, Index, RepositoryError, VersionSource, scan
from service.settings import CRF_PRESETS, Settings

log = logging.getLogger(__name__)
UNHEALTHY_AFTER_FAILURES = 3  # consecutive failed batches before /healthz reports the backend broken
Status = Literal["loading", "ready", "failed"]


@dataclass(frozen=True, eq=False)
class ReadyModel:
    """A loaded, warmed-up version as requests see it: nothing in it is optional, so no caller checks."""

    name: str
    version: int
    card: ModelCard
    backend: Backend
    batcher: Batcher

    @property
    def policy(self) -> BatchPolicy:
        return self.batcher.policy

    async def shut_down(self) -> None:
        """Finish every request it queued, then release its engine (off the event loop: a GPU teardown waits)."""
        await self.batcher.close()
        await asyncio.to_thread(self.backend.close)


@dataclass(eq=False)
class ModelEntry:
    """One version of a model: its card and, from loaded until released, what serves it."""

    name: str
    version: int
    card_path: Path
    fingerprint: Fingerprint = ()
    card: ModelCard | None = None
    status: Status = "loading"
    error: str | None = None
    loaded: ReadyModel | None = None  # set by a successful load; every entry in `Model.serving` has it
    users: int = 0  # requests between registry.use() and their answer
    released: asyncio.Event = field(default_factory=asyncio.Event)  # set when the last user of a retired entry left
    retired: bool = False

    @classmethod
    def from_source(cls, source: VersionSource) -> ModelEntry:
        status: Status = "failed" if source.error else "loading"
        return cls(source.name, source.version, source.card_path, source.fingerprint, source.card, status,
                   source.error)


@dataclass
class Model:
    """A model name: the versions serving it and the latest attempt at each version that is not (yet) serving."""

    name: str
    serving: dict[int, ModelEntry] = field(default_factory=dict)
    attempts: dict[int, ModelEntry] = field(default_factory=dict)  # loading, or failed (the old one still serves)
    wanted: tuple[int, ...] = ()  # the versions the policy picked from disk, highest first

    @property
    def status(self) -> Status:
        if self.serving:
            return "ready"
        return "loading" if any(e.status == "loading" for e in self.attempts.values()) else "failed"

    @property
    def error(self) -> str | None:
        """The newest failed attempt, also while an older version keeps serving."""
        failed = [e for _, e in sorted(self.attempts.items(), reverse=True) if e.status == "failed"]
        return f"version {failed[0].version}: {failed[0].error}" if failed else None

    def serving_entry(self, version: int | None) -> ModelEntry | None:
        """The entry serving `version`; for None the highest version serving."""
        if version is None:
            return self.serving[max(self.serving)] if self.serving else None
        return self.serving.get(version)

    @property
    def latest(self) -> ReadyModel | None:
        """What a request without a version gets: the highest ready version."""
        entry = self.serving_entry(None)
        return entry.loaded if entry else None

    @property
    def card(self) -> ModelCard | None:
        if self.latest is not None:
            return self.latest.card
        return next((e.card for _, e in sorted(self.attempts.items(), reverse=True) if e.card), None)

    def versions(self) -> list[tuple[int, Status, str | None]]:
        """(version, status, error) of every version serving or tried, highest first."""
        rows = []
        for version in sorted(set(self.serving) | set(self.attempts), reverse=True):
            attempt = self.attempts.get(version)
            status = "ready" if version in self.serving else attempt.status
            rows.append((version, status, attempt.error if attempt else None))
        return rows


@dataclass
class ModelRegistry:
    settings: Settings
    models: dict[str, Model] = field(default_factory=dict)
    problem: str | None = None  # a failure that is not any one model's (e.g. no models directory)
    _planned: list[ModelEntry] = field(default_factory=list)
    _control: asyncio.Lock = field(default_factory=asyncio.Lock)  # one change of the repository at a time
    _retiring: list[ModelEntry] = field(default_factory=list)  # swapped out, released once the change settles

    def discover(self) -> Index:
        """Scan the repository and plan a load of every model; unreadable cards become failed versions."""
        try:
            index = self.scan()
        except RepositoryError:
            return {}
        self._planned = self._plan(index, index.keys())
        return index

    async def load_all(self) -> None:
        """Load, warm up and start every discovered version, one at a time (engines compete for memory)."""
        async with self._control:
            await self._load(self._planned, list(self.models))
            self._planned = []

    async def refresh(self, index: Index, names: Iterable[str]) -> None:
        """Bring `names` in line with `index`: load new or changed versions, then retire what they supersede.

        A name absent from `index` is unloaded. Called by the poll loop and the explicit load API.
        """
        async with self._control:
            names = list(names)
            await self._load(self._plan(index, names), names)
            for name in names:
                if name not in index:
                    await self._unload(name)

    async def unload(self, name: str) -> None:
        """Stop serving `name` (404 afterwards), let its queued requests finish, release its engines."""
        async with self._control:
            if name not in self.models:
                raise ServiceError(404, "model_not_found", f"no model named {name!r} is loaded")
            await self._unload(name)

    def scan(self) -> Index:
        """The repository as it is now (RepositoryError when it cannot be read); `problem` follows every scan,
        so a repository that was empty or missing at start-up stops being a problem once poll finds models."""
        try:
            index = scan(self.settings.models)
        except RepositoryError as exc:
            self.problem = str(exc)
            raise
        default = self.settings.default_model
        if not index:
            self.problem = f"no model cards (*.json) in {self.settings.models}"
        elif default is not None and default not in index:
            self.problem = f"default model {default!r} has no card in {self.settings.models}"
        else:
            self.problem = None
        return index

    def _plan(self, index: Index, names: Iterable[str]) -> list[ModelEntry]:
        """The attempts that bring `names` in line with `index` (sources that failed to read fail at once)."""
        planned = []
        for name in names:
            sources = index.get(name)
            if not sources:
                continue
            model = self.models.setdefault(name, Model(name))
            model.wanted = tuple(sorted(sources, reverse=True)[: self.settings.model_versions])
            model.attempts = {v: e for v, e in model.attempts.items() if v in model.wanted}
            for version in model.wanted:
                source = sources[version]
                serving, attempt = model.serving.get(version), model.attempts.get(version)
                if serving is not None and serving.fingerprint == source.fingerprint:
                    model.attempts.pop(version, None)  # the files that serve are back: a failed reload is moot
                    continue
                if attempt is not None and attempt.fingerprint == source.fingerprint:
                    continue  # the same files failed already
                entry = ModelEntry.from_source(source)
                model.attempts[version] = entry
                if entry.status == "failed":
                    telemetry.MODEL_LOADS.labels(model=name, result="failure").inc()
                else:
                    planned.append(entry)
        return planned

    async def _load(self, entries: list[ModelEntry], names: Iterable[str]) -> None:
        """Start `entries` one at a time, swapping each in when ready; then retire what `names` no longer want."""
        for entry in entries:
            if await self._start(entry):
                self._swap_in(entry)
        for name in names:
            if name in self.models:
                self._retire_superseded(self.models[name])
        retiring, self._retiring = self._retiring, []
        await asyncio.gather(*(release(entry) for entry in retiring))

    async def _start(self, entry: ModelEntry) -> bool:
        try:
            backend = await asyncio.to_thread(load_backend_checked, entry.card, self.settings)
        except Exception as exc:  # noqa: BLE001 - a version that fails to load must not stop the others
            return self._failed(entry, exc)
        try:
            policy = policy_for(backend, self.settings.batching)
            await asyncio.to_thread(warm_up, backend, entry.card, policy)
        except Exception as exc:  # noqa: BLE001
            await asyncio.to_thread(backend.close)
            return self._failed(entry, exc)
        batcher = Batcher(entry.name, backend, policy, version=entry.version)
        batcher.start()
        entry.loaded = ReadyModel(entry.name, entry.version, entry.card, backend, batcher)
        entry.status = "ready"
        telemetry.MODEL_LOADS.labels(model=entry.name, result="success").inc()
        telemetry.MODEL_INFO.labels(model=entry.name, version=str(entry.version), backend=backend.name,
                                    precision=backend.precision).set(1)
        log.info("model %s version %d ready on %s (%s), batching %s",
                 entry.name, entry.version, backend.name, backend.precision, policy)
        return True

    def _failed(self, entry: ModelEntry, exc: Exception) -> bool:
        log.exception("model %s version %d failed to load", entry.name, entry.version)
        entry.status, entry.error = "failed", f"{type(exc).__name__}: {exc}"
        telemetry.MODEL_LOADS.labels(model=entry.name, result="failure").inc()
        return False

    def _swap_in(self, entry: ModelEntry) -> None:
        """New requests go to `entry` from here on; the instance it replaces is retired once the model settles."""
        model = self.models[entry.name]
        replaced = model.serving.get(entry.version)
        model.serving[entry.version] = entry
        if model.attempts.get(entry.version) is entry:
            del model.attempts[entry.version]
        if replaced is not None:
            replaced.retired = True
            self._retiring.append(replaced)

    def _retire_superseded(self, model: Model) -> None:
        """Once a wanted version serves, drop the versions the policy no longer wants (else keep them serving)."""
        if any(version in model.serving for version in model.wanted):
            for version in [v for v in model.serving if v not in model.wanted]:
                entry = model.serving.pop(version)
                entry.retired = True
                self._retiring.append(entry)

    async def _unload(self, name: str) -> None:
        model = self.models.pop(name, None)
        if model is None:
            return
        for entry in model.serving.values():
            entry.retired = True
        await asyncio.gather(*(release(entry) for entry in model.serving.values()))
        log.info("model %s unloaded", name)

    @property
    def ready(self) -> bool:
        return self.problem is None and bool(self.models) and all(m.serving for m in self.models.values())

    def failing_models(self) -> list[str]:
        """Models whose backend keeps failing (a broken device wants a restart, not retries)."""
        return sorted({
            name for name, model in self.models.items() for e in model.serving.values()
            if e.loaded is not None and e.loaded.batcher.consecutive_failures >= UNHEALTHY_AFTER_FAILURES
        })

    def default_name(self) -> str | None:
        if self.settings.default_model is not None:
            return self.settings.default_model
        return next(iter(sorted(self.models)), None)

    def get(self, name: str | None, version: int | None = None) -> ReadyModel:
        """The ready version of `name` (or the default model; the newest version): 404 unknown, 503 not usable."""
        return self._find(name, version)[1]

    def _find(self, name: str | None, version: int | None) -> tuple[ModelEntry, ReadyModel]:
        """`get()`, with the entry that holds what it returns (`use()` counts that entry's users)."""
        if not self.models:
            raise ServiceError(503, "no_models", self.problem or "no models are configured")
        name = name or self.default_name()
        model = self.models.get(name)
        if model is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise ServiceError(404, "model_not_found", f"no model named {name!r}; models: {known}")
        if version is not None and version not in model.serving and version not in model.attempts:
            known = ", ".join(str(v) for v, _, _ in model.versions()) or "none"
            raise ServiceError(404, "version_not_found", f"model {name!r} has no version {version}; versions: {known}")
        entry = model.serving_entry(version)
        if entry is not None and entry.loaded is not None:
            return entry, entry.loaded
        label = f"model {name!r}" + (f" version {version}" if version is not None else "")
        if model.status == "loading" or (version is not None and model.attempts[version].status == "loading"):
            raise ServiceError(503, "model_loading", f"{label} is still loading", {"Retry-After": "5"})
        raise ServiceError(503, "model_unavailable", f"{label} failed to load: {model.error}")

    @contextlib.asynccontextmanager
    async def use(self, name: str | None, version: int | None = None) -> AsyncIterator[ReadyModel]:
        """`get()`, holding the version until the block ends: a swap releases it only after its last user."""
        entry, ready = self._find(name, version)
        entry.users += 1
        try:
            yield ready
        finally:
            entry.users -= 1
            if entry.retired and entry.users == 0:
                entry.released.set()

    async def close(self) -> None:
        """Drain every queue, then release the engines. The entries keep `loaded` (closed): a request that
        still arrives gets the batcher's 503 shutting_down, as during the drain."""
        serving = [entry.loaded for model in self.models.values() for entry in model.serving.values()
                   if entry.loaded is not None]
        await asyncio.gather(*(ready.shut_down() for ready in serving))


async def release(entry: ModelEntry) -> None:
    """After its last user: drain the retired version's queue, release its engine and its metric."""
    if entry.users > 0:
        await entry.released.wait()
    ready, entry.loaded = entry.loaded, None
    if ready is not None:
        await ready.shut_down()
        telemetry.MODEL_INFO.labels(model=entry.name, version=str(entry.version), backend=ready.backend.name,
                                    precision=ready.backend.precision).set(0)
    log.info("model %s version %d released", entry.name, entry.version)


def load_backend_checked(card: ModelCard, settings: Settings) -> Backend:
    """The card's ONNX file must exist and match its recorded sha256, and a CRF preset it names must be one
    this service has, before any engine loads it."""
    load_card(card.path, verify_files=True)
    if card.crf_preset is not None and card.crf_preset not in CRF_PRESETS:
        raise ModelCardError(f"{card.path}: crf.preset {card.crf_preset!r} is not one of {sorted(CRF_PRESETS)}")
    return load_backend(card, settings)


def warm_up(backend: Backend, card: ModelCard, policy: BatchPolicy) -> None:
    """Let the backend prepare for the largest batch the model will see, `concurrent_batches` of them at once
    (`Backend.prepare`), check the shapes against the card, and run the labels-only fetch once."""
    batch_size = policy.max_batch_size
    images = np.full((batch_size, *card.input_size, 3), card.input.resize.pad_value, dtype=np.uint8)
    result = backend.prepare(images, policy.concurrent_batches)
    expected = (batch_size, *card.input_size)
    if result.labels.shape != expected or result.probabilities is None:
        raise ValueError(f"{card.name}: warm-up labels have shape {result.labels.shape}, expected {expected}")
    if result.probabilities.shape != (*expected, card.num_classes):
        raise ValueError(
            f"{card.name}: the model outputs {result.probabilities.shape[-1]} classes, "
            f"the card lists {card.num_classes}"
        )
    backend.infer(images, want_probabilities=False)
