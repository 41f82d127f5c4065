"""What one server process holds while it runs; created by the app's lifespan, read by the routes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from service.crf import CrfPool
from service.registry import ModelRegistry
from service.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    registry: ModelRegistry
    crf_pool: CrfPool
    draining: bool = False  # set on SIGTERM: /readyz answers 503 from then on
    background: set[asyncio.Task] = field(default_factory=set)
