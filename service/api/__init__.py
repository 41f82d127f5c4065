"""HTTP routes: thin adapters that parse, call one function and shape the response."""

from service.api import demo, metrics, models, probes, segment

ROUTERS = (segment.router, models.router, probes.router, metrics.router, demo.router)
