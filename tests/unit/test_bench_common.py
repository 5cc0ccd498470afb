"""The benchmark helpers measure what they claim: a process tree's PSS includes its children; a run starts afresh."""
import subprocess
import sys
import time

from bench.common import MIB, PeakPss, fresh_run_dir, median, percentile, tree_pss_bytes

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


def test_fresh_run_dir_leaves_nothing_for_ps_serve_to_resume(tmp_path):
    run_dir = tmp_path / "pong-2w-ff"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt-00000001.a3c").write_bytes(b"an earlier run")
    (run_dir / "pushes.csv").write_text("time_seconds\n1.0\n")
    assert fresh_run_dir(run_dir) == run_dir
    assert run_dir.is_dir() and list(run_dir.iterdir()) == []
    assert fresh_run_dir(tmp_path / "new" / "run").is_dir()  # a missing parent is made too
