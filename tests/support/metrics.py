"""Scraping an operator process's Prometheus endpoint the way Prometheus reads it.

Data in: ``http://127.0.0.1:<port>/metrics`` of a watcher or worker started by a test.
Data out: every sample, keyed by name and label set, parsed with prometheus_client's own
parser (so a malformed exposition fails the test instead of being read leniently).
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """The samples on ``port``; empty while nothing answers there yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
