"""A one-way delay line for a network namespace whose kernel has no `tc netem` (sch_netem not built).

Run inside a host's namespace: it creates a TUN device; the test routes the peer's address through it.
Every packet the host sends to that peer is read from the TUN, held for the delay, and sent out of the
real interface (a raw IP socket bound to it), unchanged: the same effect as
`tc qdisc add dev eth0 root netem delay 20ms` for traffic to that peer. Replies arrive on the real
interface directly, as with netem on the egress side only.

    ip netns exec NS python -m tests.integration.delayline --delay-ms 20 --dev eth0 --tun tun0
"""
from __future__ import annotations

import argparse
import fcntl
import heapq
import os
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def run(delay_seconds: float, dev: str, tun: str) -> None:
    fd = open_tun(tun)
    out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # we write whole IP packets
    out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
    print("ready", flush=True)
    held: list[tuple[float, int, bytes]] = []  # (due, arrival order, packet)
    order = 0
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([fd], [], [], timeout)
        if readable:
            while True:
                try:
                    packet = os.read(fd, 65535)
                except BlockingIOError:
                    break
                if len(packet) >= 20 and packet[0] >> 4 == 4:  # IPv4 only: the test network has no IPv6
                    heapq.heappush(held, (time.monotonic() + delay_seconds, order, packet))
                    order += 1
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, packet = heapq.heappop(held)
            out.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--dev", default="eth0", help="the real interface packets leave by")
    p.add_argument("--tun", default="tun0", help="name of the TUN device to create")
    args = p.parse_args(argv)
    run(args.delay_ms / 1000.0, args.dev, args.tun)
    return 0


if __name__ == "__main__":
    sys.exit(main())
