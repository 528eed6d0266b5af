"""What every benchmark shares: a child process reports its own peak memory, not its parent's."""

from __future__ import annotations

import subprocess
import sys

from connector.bench.common import Target, peak_rss_mb, verdict_lines

_CHILD = "from connector.bench.common import peak_rss_mb; print(peak_rss_mb())"


def test_a_child_of_a_large_process_reports_its_own_peak_not_the_parents() -> None:
    ballast = bytearray(300 * 1024 * 1024)
    for offset in range(0, len(ballast), 4096):  # touch every page: resident, not only reserved
        ballast[offset] = 1
    assert peak_rss_mb() > 300
    child = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True)
    # ru_maxrss survives exec on Linux: the child would have reported over 300 MB, the parent's peak.
    assert 10 < float(child.stdout) < 200
    del ballast


def test_verdict_lines_name_every_missed_target() -> None:
    lines = verdict_lines([Target("ratio", 12.2, 1.5), Target("speed", 0.79, 0.5, at_least=True)])
    assert lines[1].endswith("MISS")
    assert lines[2].endswith("PASS")
    assert lines[-1] == "MISSED: ratio"
