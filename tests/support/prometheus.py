"""Reading samples out of Prometheus text exposition in tests."""

from __future__ import annotations

import re


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels`."""
    values = []
    for line in metrics.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{key}="{value}"' in (match.group(1) or "") for key, value in labels.items()):
            values.append(float(match.group(2)))
    assert len(values) == 1, f"{name}{labels}: {values}"
    return values[0]
