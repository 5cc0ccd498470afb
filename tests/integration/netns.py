"""A private network of Linux network namespaces, one per host, for tests that need real hosts.

Each host is a namespace with its own loopback and one veth (`eth0`) whose peer sits on a bridge inside
a separate "switch" namespace, so nothing is added to the machine's own namespace and nothing routes
outside: no namespace has a default route, and the subnet is private. A process started on a host gets
that host's /etc/hosts bind-mounted over /etc/hosts in its own mount namespace (as the kubelet gives each
container its own), so names resolve per host and nothing under /etc is written. `close()` removes every
namespace it made (deleting a namespace deletes its veths, and the bridge with the switch).
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("ip", "tc", "unshare", "mount", "sysctl")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def cannot_make_namespaces() -> str | None:
    """Why namespaces cannot be made here (a missing tool, not root ...), or None if they can."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (iproute2, util-linux, procps)"
    probe = f"a3c-probe-{uuid.uuid4().hex[:8]}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as err:
        return f"cannot create a network namespace: {err.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


class Network:
    """Hosts on one /24 behind a bridge; use as a context manager so it is removed also on failure."""

    def __init__(self, subnet: str = "10.213.7") -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.subnet = subnet
        self.namespaces: list[str] = []
        self.hosts: dict[str, tuple[str, str]] = {}  # host name -> (namespace, address)
        self._etc = Path(tempfile.mkdtemp(prefix=f"a3c-{self.tag}-etc-"))  # each host's hosts file
        self._delay_lines: dict[str, subprocess.Popen] = {}
        try:
            self.switch = self._namespace("sw")
            self._run(self.switch, "ip", "link", "add", "br0", "type", "bridge")
            self._run(self.switch, "ip", "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _namespace(self, name: str) -> str:
        ns = f"a3c-{self.tag}-{name}"
        self.namespaces.append(ns)  # before creating: close() removes it even if the next steps fail
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def _run(self, ns: str, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True, timeout=30)

    def add_host(self, name: str, host_number: int) -> str:
        """A namespace named after `name` at <subnet>.<host_number>, plugged into the bridge."""
        ns = self._namespace(name)
        address = f"{self.subnet}.{host_number}"
        port = f"p{len(self.hosts)}-{self.tag}"  # the bridge side, inside the switch namespace
        _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        self.hosts[name] = (ns, address)
        (self._etc / name).write_text(f"127.0.0.1 localhost\n{address} {name}\n")
        return ns

    def resolve(self, host: str, names: list[str], to: str) -> None:
        """Make `names` resolve to host `to`'s address for processes started on `host`."""
        with open(self._etc / host, "a") as hosts:
            hosts.write(f"{self.hosts[to][1]} {' '.join(names)}\n")

    def routes(self, host: str) -> list[str]:
        """The host's IPv4 routing table, one route a line."""
        ns, _ = self.hosts[host]
        out = subprocess.run(["ip", "-n", ns, "-4", "route", "show", "table", "all"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
        return [line for line in out.splitlines() if line.strip()]

    def delay(self, host: str, milliseconds: float, towards: str) -> str:
        """Every packet `host` sends to `towards` waits `milliseconds` (egress only, like netem on its link).

        `tc qdisc ... netem` where the kernel has it; otherwise a user-space delay line (delayline.py)
        inside `host`, with `towards`'s address routed through it. Returns which of the two it used.
        """
        ns, address = self.hosts[host]
        netem = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root",
                                "netem", "delay", f"{milliseconds}ms"], capture_output=True, text=True, timeout=30)
        if netem.returncode == 0:
            return "tc netem"
        if "unknown" not in netem.stderr.lower():
            raise RuntimeError(f"tc netem in {ns}: {netem.stderr.strip()}")
        line = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.integration.delayline",
                                 "--delay-ms", str(milliseconds), "--dev", "eth0", "--tun", "tun0"],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self._delay_lines[host] = line
        if line.stdout.readline().strip() != "ready":
            raise RuntimeError(f"delay line in {ns} exited {line.wait()}")
        # replies come back on eth0 while the route to their source is tun0: no reverse-path filter
        self._run(ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0")
        self._run(ns, "ip", "link", "set", "tun0", "up")
        self._run(ns, "ip", "route", "add", f"{self.hosts[towards][1]}/32", "dev", "tun0", "src", address)
        return "user-space delay line (this kernel has no sch_netem)"

    def no_delay(self, host: str) -> None:
        ns, _ = self.hosts[host]
        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root"],
                       capture_output=True, timeout=30)
        line = self._delay_lines.pop(host, None)
        if line is not None:  # its TUN device, and the route through it, go with it
            line.kill()
            line.wait(timeout=10)

    def popen(self, host: str, argv: list[str], env: dict[str, str], hostname: str = "", **kwargs) -> subprocess.Popen:
        """Start argv on `host`: in its network namespace, with its /etc/hosts and, if given, its hostname.

        `ip netns exec`, `unshare` and `sh -c 'exec ...'` each exec the next: the Popen's pid is the process.
        """
        ns, _ = self.hosts[host]
        setup = [f"mount --bind {shlex.quote(str(self._etc / host))} /etc/hosts"]
        if hostname:
            setup.append(f"hostname {shlex.quote(hostname)}")
        script = " && ".join([*setup, 'exec "$@"'])
        return subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "--mount", "--uts", "sh", "-c", script,
                                 "sh", *argv], env=env, **kwargs)

    def close(self) -> None:
        for host in list(self._delay_lines):
            self.no_delay(host)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.namespaces.clear()
        shutil.rmtree(self._etc, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Anything of ours still on the machine (namespaces, hosts files): empty after close()."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
        found = [line.split()[0] for line in listed.splitlines() if line.startswith(f"a3c-{self.tag}-")]
        return found + ([str(self._etc)] if self._etc.exists() else [])
