"""Beam counters to a nested stats dict, and the table printed at the end of a local run.

Counter names are `group` or `group:key` in a stage's namespace, e.g. `records_skipped:too_large`.
"""

from __future__ import annotations

from apache_beam.metrics.metric import MetricsFilter


def counters_to_stats(result, namespace: str) -> dict:
    stats: dict = {}
    query = result.metrics().query(MetricsFilter().with_namespace(namespace))
    for counter in query["counters"]:
        try:
            value = counter.committed
        except Exception:  # some runners only report attempted values
            value = None
        if value is None:
            value = counter.attempted
        add_counts(stats, {counter.key.metric.name: value})
    return stats


def add_counts(stats: dict, counts: dict) -> dict:
    """Add flat counts named like counters (`group` or `group:key`) into a stats dict."""
    for name, value in counts.items():
        group, _, key = name.partition(":")
        if key:
            stats.setdefault(group, {})
            stats[group][key] = stats[group].get(key, 0) + value
        else:
            stats[group] = stats.get(group, 0) + value
    return stats


def total(stats: dict, group: str) -> int:
    value = stats.get(group, 0)
    return sum(value.values()) if isinstance(value, dict) else value


def format_table(stats: dict, title: str) -> str:
    rows = []
    for group in sorted(stats):
        value = stats[group]
        if isinstance(value, dict):
            rows.append((group, str(sum(value.values()))))
            rows.extend((f"  {key}", str(value[key])) for key in sorted(value))
        elif isinstance(value, (int, float)):
            rows.append((group, str(value)))
    width = max((len(name) for name, _ in rows), default=10)
    lines = [title, "-" * (width + 14)]
    lines += [f"{name:<{width}}  {value:>12}" for name, value in rows]
    return "\n".join(lines)
