"""One run dir, one server, with real ps-serve processes: a second server on a live server's run dir
refuses in one line naming the holder and touches nothing; a port in use is one line and leaves no run
dir; stale temp files go at start; /metrics binds loopback; `make run` folders are unique."""
import json
import os
import signal
import socket
import subprocess
import time

from tests.conftest import ROOT, cli, kill, start_server

RUN = ("--env", "CartPole-v1", "--algo", "a3c", "--seed", "1", "--target-return", "none", "--envs", "4")


def _one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, out.stderr
    return errors[0]


def test_a_second_server_on_a_live_run_dir_refuses_naming_the_holder_and_touches_nothing(tmp_path):
    run_dir = tmp_path / "run"
    first = start_server(run_dir, *RUN, "--total-steps", "100000000")
    try:
        assert (run_dir / ".lock").read_text().split() == ["pid", str(first.proc.pid), "port", str(first.port)]
        before = sorted(p.name for p in run_dir.iterdir())
        tb_before = sorted(p.name for p in (run_dir / "tb").iterdir())
        for extra in ((), ("--fresh",)):  # --fresh would move the live server's records into replaced-*/
            out = subprocess.run([cli("ps-serve"), *RUN, "--port", "0", "--run-dir", str(run_dir), *extra],
                                 capture_output=True, text=True, timeout=120)
            line = _one_error_line(out)
            assert line == (f"ps-serve: error: run dir {run_dir} is in use by another ps-serve "
                            f"(pid {first.proc.pid} port {first.port}): stop it, or give another --run-dir")
        assert sorted(p.name for p in run_dir.iterdir()) == before  # no replaced-*/, no second port file
        assert sorted(p.name for p in (run_dir / "tb").iterdir()) == tb_before  # no second event file
        assert first.proc.poll() is None
        first.proc.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        # the lock dies with its holder: the next server on the dir starts (and resumes nothing)
        again = start_server(run_dir, *RUN, "--total-steps", "100000000")
        again.proc.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0
    finally:
        kill(first.proc)


def test_a_port_in_use_is_one_line_and_leaves_no_run_dir(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run_dir = tmp_path / "new" / "run"
        out = subprocess.run([cli("ps-serve"), *RUN, "--port", str(port), "--run-dir", str(run_dir)],
                             capture_output=True, text=True, timeout=120)
    line = _one_error_line(out)
    assert line.startswith(f"ps-serve: error: cannot bind 127.0.0.1:{port}: Address already in use")
    assert not run_dir.exists()


def test_a_failed_start_keeps_a_run_dir_it_did_not_create(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = subprocess.run([cli("ps-serve"), *RUN, "--port", str(taken.getsockname()[1]),
                              "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=120)
    _one_error_line(out)
    assert (run_dir / "notes.txt").read_text() == "mine\n"


def test_stale_temp_files_are_removed_at_start(tmp_path):
    run_dir = tmp_path / "run"
    stale = [run_dir / "checkpoints" / ".ckpt-00000007.a3c.tmp", run_dir / "summary.json.tmp",
             run_dir / "params_final.npz.tmp.npz", run_dir / "staleness.tmp.png"]
    (run_dir / "checkpoints").mkdir(parents=True)
    for p in stale:
        p.write_bytes(b"\0" * 4096)
    (run_dir / "keep.txt").write_text("not a temp file\n")
    server = start_server(run_dir, *RUN, "--total-steps", "100000000")
    try:
        assert [p for p in stale if p.exists()] == []
        assert (run_dir / "keep.txt").exists()
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        kill(server.proc)


def _listening(port: int) -> list[str]:
    """Local addresses listening on `port`, from /proc/net/tcp and tcp6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hexport = local.rsplit(":", 1)
                if state == "0A" and int(hexport, 16) == port:
                    found.append(addr)
    return found


def test_metrics_bind_loopback_even_when_grpc_binds_every_address(tmp_path):
    run_dir = tmp_path / "run"
    server = start_server(run_dir, *RUN, "--total-steps", "100000000", "--host", "0.0.0.0", "--insecure",
                          "--metrics-port", "0")
    try:
        deadline = time.monotonic() + 30
        while not (run_dir / "metrics_port").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        mport = int((run_dir / "metrics_port").read_text())
        assert _listening(mport) == ["0100007F"]           # 127.0.0.1 only
        assert [a.strip("0") for a in _listening(server.port)] == [""]  # gRPC on every address, as asked
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        kill(server.proc)


def test_make_run_folders_are_unique():
    dirs = set()
    for _ in range(2):
        out = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
        line = [x for x in out.stdout.splitlines() if "ps-serve" in x][-1]
        dirs.add(line.split("--run-dir ")[1].split()[0])
    assert len(dirs) == 2, dirs


def test_summary_json_counts_no_disk_faults_on_a_healthy_disk(tmp_path):
    run_dir = tmp_path / "run"
    server = start_server(run_dir, *RUN, "--total-steps", "100000000")
    try:
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert json.loads((run_dir / "summary.json").read_text())["disk_faults"] == {}
    finally:
        kill(server.proc)
