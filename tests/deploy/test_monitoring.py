"""Prometheus config and Grafana dashboard use the metric names the service really exports."""

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from service import telemetry

SERIES_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


@pytest.fixture(scope="module")
def exported_names():
    """Series names /metrics shows for every metric in service.telemetry (labelled ones too, which
    have no samples until first used): histograms as _bucket/_sum/_count, counters as _total."""
    names = set()
    for value in vars(telemetry).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.collect():
                names.update(family.name + suffix for suffix in SERIES_SUFFIXES[family.type])
    return names


def dashboard(project_root):
    return json.loads((project_root / "docker/grafana/dashboards/deeplab-serve.json").read_text())


def test_every_dashboard_query_uses_exported_metrics(project_root, exported_names):
    panels = dashboard(project_root)["panels"]
    used = {name for panel in panels for target in panel["targets"]
            for name in re.findall(r"\bseg_[a-z_]+", target["expr"])}
    assert used and used <= exported_names, f"not exported: {sorted(used - exported_names)}"
    titles = " ".join(panel["title"].lower() for panel in panels)
    for topic in ("latency", "batch size", "throughput", "drift: image confidence", "drift: predicted class area"):
        assert topic in titles


def test_dashboard_and_datasource_are_provisioned(project_root):
    source = yaml.safe_load((project_root / "docker/grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {ds["uid"] for ds in source["datasources"]}
    assert {panel["datasource"]["uid"] for panel in dashboard(project_root)["panels"]} <= uids
    provider = yaml.safe_load((project_root / "docker/grafana/provisioning/dashboards/deeplab-serve.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_the_service(project_root):
    config = yaml.safe_load((project_root / "docker/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]]
    assert targets == ["segmentation:8000", "segmentation-cpu:8000"]


def test_promtool_accepts_the_config(project_root):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run([promtool, "check", "config", "docker/prometheus.yml"], cwd=project_root,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
