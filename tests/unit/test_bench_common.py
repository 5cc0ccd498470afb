"""The benchmark helpers measure what they claim: a process tree's PSS includes its children."""
import subprocess
import sys
import time

from bench.common import MIB, PeakPss, median, percentile, tree_pss_bytes

# A parent that starts a child; only the child allocates (and touches) 150 MB.
TREE = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
        "'import time; b = bytearray(150 * 1024 * 1024); time.sleep(3)'])")


def test_peak_pss_counts_the_memory_of_a_child_process():
    parent = subprocess.Popen([sys.executable, "-c", TREE])
    try:
        with PeakPss(parent.pid, period_seconds=0.05) as mem:
            parent.wait(timeout=30)
    finally:
        parent.kill()
    assert mem.peak_processes == 2
    assert mem.peak_bytes >= 150 * MIB
    assert mem.peak_bytes < 1024 * MIB


def test_tree_pss_of_a_gone_process_is_zero():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    time.sleep(0.05)
    assert tree_pss_bytes(proc.pid) == (0, 0)


def test_median_counts_an_unsolved_run_as_slowest():
    assert median([3.0, None, 5.0]) == 5.0
    assert median([None, None, 1.0]) == float("inf")
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile(range(1, 101), 99) == 99
