"""A worker pointed at a port where something other than gRPC answers fails fast, in one line."""
import http.server
import subprocess
import threading
import time

from tests.conftest import cli


def test_a_worker_at_an_http_port_fails_fast_in_one_line():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        out = subprocess.run([cli("worker-run"), "--ps", f"127.0.0.1:{httpd.server_address[1]}",
                              "--connect-timeout", "120"], capture_output=True, text=True, timeout=60)
        seconds = time.monotonic() - start
    finally:
        httpd.shutdown()
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert out.returncode == 2
    assert len(errors) == 1 and errors[0].startswith("worker-run: error:") and "does not speak gRPC" in errors[0]
    assert "Traceback" not in out.stderr
    assert seconds < 30  # not the 120 s a silent server would be retried for
