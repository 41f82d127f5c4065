"""What one server process holds while it runs; created by the app's lifespan, read by the routes."""

from __future__ import annotations

from dataclasses import dataclass

from service.crf import CrfPool
from service.registry import ModelRegistry
from service.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    registry: ModelRegistry
    crf_pool: CrfPool
    started: bool = False  # every model tried and the CRF workers up
    startup_problem: str | None = None  # a start-up failure that is no one model's
    draining: bool = False  # set on SIGTERM: /readyz answers 503 from then on

    @property
    def problem(self) -> str | None:
        return self.registry.problem or self.startup_problem

    @property
    def ready(self) -> bool:
        return self.started and not self.draining and self.problem is None and self.registry.ready
