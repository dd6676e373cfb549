"""Worker "hosts" for tests: Linux network namespaces joined to the main one by veth pairs.

The main namespace gets a bridge with one address (the services' address, SERVICE_IP);
each host is a namespace whose veth peer is a port of that bridge, with an address of its
own on the same /24. Cutting a host sets its bridge port down. Traffic goes only between
these addresses and loopback; everything is removed again by ``destroy`` (also after a
failure), including any process still running in a namespace.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def netns_unavailable() -> str:
    """Why this machine cannot make network namespaces ('' when it can)."""
    probe = f"nwprobe{uuid.uuid4().hex[:6]}"
    try:
        made = ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return "the `ip` command (iproute2) is not installed"
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here ({made.stderr.strip() or 'exit ' + str(made.returncode)}); " \
               f"run as root on Linux"
    ip("netns", "del", probe, check=False)
    return ""


class HostNetwork:
    """A bridge in the main namespace plus one namespace per host."""

    def __init__(self, hosts: list[str], subnet: str = "10.211.77"):
        tag = uuid.uuid4().hex[:5]
        self.subnet = subnet
        self.bridge = f"nwbr{tag}"
        self.service_ip = f"{subnet}.1"
        self.hosts: dict[str, dict] = {}
        self._made: list[tuple[str, str]] = []  # ("link"|"netns", name), in creation order
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            self._made.append(("link", self.bridge))
            ip("addr", "add", f"{self.service_ip}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for n, host in enumerate(hosts, start=2):
                self._add_host(host, n, tag)
        except BaseException:
            self.destroy()
            raise

    def _add_host(self, host: str, n: int, tag: str) -> None:
        ns, outside, inside = f"nw{host}{tag}", f"nwo{n}{tag}", f"nwi{n}{tag}"
        ip("netns", "add", ns)
        self._made.append(("netns", ns))
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._made.append(("link", outside))
        ip("link", "set", inside, "netns", ns)
        ip("link", "set", outside, "master", self.bridge)
        ip("link", "set", outside, "up")
        address = f"{self.subnet}.{n}"
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
        ip("-n", ns, "link", "set", inside, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        self.hosts[host] = {"ns": ns, "address": address, "port": outside}

    def exec_args(self, host: str, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[host]["ns"], *args]

    def reachable(self, host: str, port: int) -> bool:
        probe = ("import socket,sys; s=socket.socket(); s.settimeout(2); "
                 f"sys.exit(s.connect_ex(('{self.service_ip}', {port})))")
        return subprocess.run(self.exec_args(host, ["python3", "-c", probe]), capture_output=True).returncode == 0

    def cut(self, host: str) -> None:
        """Take the host off the network: its bridge port goes down."""
        ip("link", "set", self.hosts[host]["port"], "down")

    def kill_all(self, host: str) -> None:
        """SIGKILL every process inside the host's namespace."""
        ns = self.hosts[host]["ns"]
        for _ in range(3):
            pids = [int(p) for p in ip("netns", "pids", ns, check=False).stdout.split()]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)

    def destroy(self) -> None:
        for kind, name in reversed(self._made):
            if kind == "netns":
                for host, info in self.hosts.items():
                    if info["ns"] == name:
                        self.kill_all(host)
                ip("netns", "del", name, check=False)
            else:
                ip("link", "del", name, check=False)
        self._made.clear()
