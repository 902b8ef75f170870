"""With several workers the per-key counters are exported once, merged over the workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# prometheus_client picks its value class when imported, so each worker is a fresh process.
WORKER = textwrap.dedent(
    """
    import sys
    from guard_proxy.keys.usage import KeyUsage
    from guard_proxy.proxy.metrics import Metrics

    metrics, usage = Metrics(), KeyUsage()
    usage.of("team-a").requests.inc(int(sys.argv[1]))
    usage.shared.set(int(sys.argv[2]))
    sys.stdout.write(metrics.render({}) + usage.render().decode())
    """
)


def scrape(directory: Path, requests: int, shared: int) -> str:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(requests), str(shared)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_key_counters_of_every_worker_are_summed_and_exported_once(tmp_path: Path) -> None:
    scrape(tmp_path, 3, 1)
    text = scrape(tmp_path, 4, 1)
    lines = [line for line in text.splitlines() if line.startswith("guard_proxy_key_requests")]
    assert lines == ['guard_proxy_key_requests_total{key="team-a"} 7.0']
    assert text.count("# TYPE guard_proxy_key_requests") == 1
