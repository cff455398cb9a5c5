"""A real capture process for `netan live`: tcpdump writing pcap to a pipe.

Why tcpdump: it is one small, ubiquitous libpcap program that streams pcap to
stdout packet by packet (``-U``; the kernel hands it packets in blocks, at most
1 s late, see ``CaptureProcess.start``), takes a large kernel buffer (``-B``), needs only CAP_NET_RAW/CAP_NET_ADMIN on its own binary (netan
itself runs unprivileged), and reports kernel and interface drops when it
exits (and on SIGUSR1 on Linux). dumpcap would do the same with more moving
parts; a Python libpcap binding would put capture on netan's own GIL.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CaptureProcess", "CaptureStats", "interface_exists", "parse_tcpdump_stats"]


def interface_exists(iface: str) -> bool:
    return Path("/sys/class/net", iface).exists()


@dataclass
class CaptureStats:
    captured: int = 0
    received_by_filter: int = 0
    dropped_by_kernel: int = 0
    dropped_by_interface: int = 0

    def add(self, other: "CaptureStats") -> None:
        self.captured += other.captured
        self.received_by_filter += other.received_by_filter
        self.dropped_by_kernel += other.dropped_by_kernel
        self.dropped_by_interface += other.dropped_by_interface


_STAT = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)", re.M)


def parse_tcpdump_stats(text: str) -> CaptureStats:
    """The last set of counters tcpdump printed (it prints them on exit and on SIGUSR1)."""
    found: dict[str, int] = {}
    for n, what in _STAT.findall(text):
        found[what] = int(n)
    return CaptureStats(found.get("captured", 0), found.get("received by filter", 0),
                        found.get("dropped by kernel", 0), found.get("dropped by interface", 0))


@dataclass
class CaptureProcess:
    iface: str
    bpf: str = ""
    snaplen: int = 0  # 0: whole packets
    buffer_kib: int = 65536
    binary: str = field(default_factory=lambda: shutil.which("tcpdump") or "tcpdump")
    proc: subprocess.Popen | None = None
    stderr_text: str = ""
    _stderr_thread: threading.Thread | None = None

    def start(self) -> int:
        """Start capturing; returns the pipe's file descriptor to read pcap from."""
        # -U: every packet goes down the pipe as soon as tcpdump has it. No --immediate-mode:
        # the kernel hands packets over in blocks (at most libpcap's 1 s timeout late), which
        # costs tcpdump one wake-up per block instead of one per packet; with it, tcpdump
        # lost packets at 100k packets/s on 2 cores (benchmarks/live_rate.py).
        argv = [self.binary, "-i", self.iface, "-w", "-", "-U", "-n",
                "-B", str(self.buffer_kib), "-s", str(self.snaplen)]
        if os.geteuid() == 0:
            argv += ["-Z", "root"]  # do not switch to the tcpdump user: it may lack access to the pipe
        if self.bpf:
            argv.append(self.bpf)
        self.stderr_text = ""
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr_text += line.decode("utf-8", "replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def request_stats(self) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]

    def stop(self, timeout: float = 10.0) -> CaptureStats:
        """Ask tcpdump to finish (it flushes what it has and prints its counters)."""
        if self.proc is None:
            return CaptureStats()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout)
        return parse_tcpdump_stats(self.stderr_text)

    def error_line(self) -> str:
        lines = [ln for ln in self.stderr_text.splitlines() if "tcpdump:" in ln or "error" in ln.lower()]
        return lines[-1].strip() if lines else f"capture process exited with status {self.proc and self.proc.returncode}"
