"""Benchmark: inbound ORM^O01 over MLLP, each validated and committed durably before its ACK.

Measures, in one run on this machine:
- the reference: python-hl7's parse-only rate for the same message (no I/O at all);
- sustained ingest over 1 and over 4 MLLP connections (each message a new case);
- ACK latency percentiles at a fixed offered rate (default 300 msg/s, one connection).
Results are appended to bench/RESULTS.md as ratios against the reference of the same run.

Run: .venv/bin/python bench/hl7_ingest.py [--messages 2000] [--rate 300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import hl7

from connector.config import load_config
from connector.demo import demo_order
from connector.hl7.mllp import FrameReader, frame
from connector.ports import free_port
from connector.server import RunningConnector

RESULTS = Path(__file__).with_name("RESULTS.md")


def message(i: int, prefix: str) -> bytes:
    return demo_order(f"{prefix}{i}", f"{prefix}-{i}").encode("utf-8")


def parse_only_rate(n: int) -> float:
    raw = message(0, "P").decode("utf-8")
    start = time.perf_counter()
    for _ in range(n):
        hl7.parse(raw)
    return n / (time.perf_counter() - start)


def send_many(port: int, payloads: list[bytes], latencies: list[float] | None = None,
              interval: float = 0.0) -> None:
    """One connection, one message at a time (MLLP is synchronous): send, wait for the ACK."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = FrameReader()
        next_at = time.perf_counter()
        for payload in payloads:
            if interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                next_at += interval
            sent = time.perf_counter()
            sock.sendall(frame(payload))
            while not reader.feed(sock.recv(65536)):
                pass
            if latencies is not None:
                latencies.append(time.perf_counter() - sent)


def ingest_rate(port: int, connections: int, per_connection: int, prefix: str) -> float:
    batches = [[message(i, f"{prefix}{c}x") for i in range(per_connection)]
               for c in range(connections)]
    threads = [threading.Thread(target=send_many, args=(port, b)) for b in batches]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return connections * per_connection / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="telederm-bench-"))
    config = load_config(None, environ={
        "TELEDERM_DATA_DIR": str(work), "TELEDERM_ORTHANC_MANAGED": "false",
        "TELEDERM_HL7_LISTEN": f"127.0.0.1:{free_port()}",
        "TELEDERM_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "TELEDERM_WORKLIST_ENABLED": "false"})
    reference = parse_only_rate(args.messages)
    with RunningConnector(config) as running:
        port = running.hl7_port
        one = ingest_rate(port, 1, args.messages, "A")
        four = ingest_rate(port, 4, args.messages // 4, "B")
        latencies: list[float] = []
        send_many(port, [message(i, "L") for i in range(int(args.rate * 5))], latencies,
                  interval=1 / args.rate)
    q = statistics.quantiles(latencies, n=100)
    lines = [
        f"\n## hl7_ingest — {dt.datetime.now().isoformat(timespec='seconds')} "
        f"({platform.python_version()}, {platform.machine()}, SQLite WAL synchronous=FULL)\n",
        "| measure | value | ratio to python-hl7 parse-only |",
        "|---|---|---|",
        f"| reference: python-hl7 parse only | {reference:,.0f} msg/s | 1 |",
        f"| ORM ingest, 1 connection ({args.messages} msgs) | {one:,.0f} msg/s | {one / reference:.3f} |",
        f"| ORM ingest, 4 connections ({args.messages} msgs) | {four:,.0f} msg/s | {four / reference:.3f} |",
        f"| ACK latency at {args.rate:.0f} msg/s offered, p50 / p99 | {q[49] * 1000:.1f} ms / "
        f"{q[98] * 1000:.1f} ms | — |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in bench/; each "
                           "section compares with a reference measured in the same run.\n")
    with RESULTS.open("a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
