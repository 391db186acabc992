"""One reader of Prometheus exposition text for the tests and benchmarks (prometheus-client's own parser)."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_value(body: str, name: str, **labels: str) -> float | None:
    """The value of sample `name` whose labels include `labels`, or None when /metrics has no such sample."""
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return None


def metric(body: str, name: str, **labels: str) -> float:
    """Like `sample_value`, but the sample must be there."""
    value = sample_value(body, name, **labels)
    assert value is not None, f"{name}{labels or ''} missing from /metrics"
    return value
