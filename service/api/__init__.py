"""HTTP routes: thin adapters that parse, call one function and shape the response."""

from service.api import demo, metrics, models, probes, segment, v2

ROUTERS = (segment.router, models.router, probes.router, metrics.router, v2.router, v2.probes, demo.router)
