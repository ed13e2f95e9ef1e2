"""Benchmark: inbound HL7 over MLLP, each message validated and committed durably before its ACK.

Measures, in one run on this machine, against python-hl7's parse-only rate of the same order
message (the reference, no I/O at all):
- ORM^O01 ingest over 1 and over 4 MLLP connections, in both ACK modes (`hl7.ack_mode`):
  "processing" (the ACK follows the case being opened) and "storage" (the ACK follows the
  message being validated and stored; it is applied just after, in arrival order), and for
  storage mode the rate at which the stored orders are then applied (cases opened);
- ACK latency percentiles at a fixed offered rate (default 300 msg/s) on one connection, with
  the applier working behind it in storage mode;
- the replay of an ADT backlog (default 100,000 ADT^A08 over 4 connections, storage mode): time
  from the first message sent until the last one is applied.

The senders run in separate processes (an HL7 sender is another program), so their CPU is not
counted in the connector's; each rate also gives the CPU time the connector's process spent
per message (all its threads: in storage mode, applying done meanwhile included), which tells
what a machine whose senders are elsewhere would reach. Results are appended to
bench/RESULTS.md.

Run: .venv/bin/python bench/hl7_ingest.py [--messages 4000] [--rate 300] [--adt 100000]
[--encrypted] (the store encrypted by SQLCipher, to compare with the same run without)
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path

import hl7

RESULTS = Path(__file__).with_name("RESULTS.md")


# --- messages --------------------------------------------------------------------------------

def order(i: int, prefix: str) -> bytes:
    from connector.demo import demo_order
    return demo_order(f"{prefix}{i}", f"{prefix}-{i}").encode("utf-8")


def adt(i: int, prefix: str) -> bytes:
    """An ADT^A08 for one of 20,000 patients (a PAS backlog: a few updates per patient)."""
    stamp = time.strftime("%Y%m%d%H%M%S")
    patient = f"IPP{i % 20000:06d}"
    return ("\r".join([
        f"MSH|^~\\&|PAS|CHU_DEMO|TELEDERM|CHU_DEMO|{stamp}||ADT^A08^ADT_A01|{prefix}{i}|P|2.5"
        "|||||FRA|UNICODE UTF-8",
        f"EVN|A08|{stamp}",
        f"PID|1||{patient}^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||DUPONT^Hélène^^^^^L||19580312|F",
        "PV1|1|O",
    ]) + "\r").encode("utf-8")


BUILDERS = {"order": order, "adt": adt}


# --- senders (separate processes) --------------------------------------------------------------

def _send(args: tuple) -> tuple[float, float, list[float], int]:
    """One MLLP connection, one message at a time: send, wait for the ACK. Returns wall-clock
    start and end, the ACK latencies when asked, and how many ACKs were not AA."""
    port, kind, prefix, count, interval, keep_latencies = args
    from connector.hl7.mllp import FrameReader, frame

    payloads = [frame(BUILDERS[kind](i, prefix)) for i in range(count)]
    latencies: list[float] = []
    refused = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = FrameReader()
        start = time.time()
        next_at = time.perf_counter()
        for payload in payloads:
            if interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                next_at += interval
            sent = time.perf_counter()
            sock.sendall(payload)
            acks: list = []
            while not acks:
                acks = reader.feed(sock.recv(65536))
            if keep_latencies:
                latencies.append(time.perf_counter() - sent)
            if b"MSA|AA|" not in acks[0]:
                refused += 1
        end = time.time()
    return start, end, latencies, refused


class Senders:
    def __init__(self, processes: int = 4):
        self.pool = multiprocessing.get_context("spawn").Pool(processes)
        self.pool.map(_warm, range(processes))

    def run(self, port: int, kind: str, prefix: str, connections: int, per_connection: int, *,
            interval: float = 0.0, latencies: bool = False):
        jobs = [(port, kind, f"{prefix}{c}x", per_connection, interval, latencies)
                for c in range(connections)]
        results = self.pool.map(_send, jobs)
        start, end = min(r[0] for r in results), max(r[1] for r in results)
        refused = sum(r[3] for r in results)
        if refused:
            raise SystemExit(f"{refused} messages were not acknowledged AA: the bench is void")
        return start, end, [x for r in results for x in r[2]]

    def close(self):
        self.pool.close()
        self.pool.join()


def _warm(_):
    import connector.demo  # noqa: F401 - import cost out of the timings
    return 0


# --- the connector -----------------------------------------------------------------------------

def connector(mode: str, encrypted: bool = False):
    from connector.config import load_config
    from connector.ports import free_port
    from connector.runtime.server import RunningConnector

    work = Path(tempfile.mkdtemp(prefix="telederm-bench-"))
    config = load_config(None, environ={
        "TELEDERM_DATA_DIR": str(work), "TELEDERM_ORTHANC_MANAGED": "false",
        "TELEDERM_HL7_LISTEN": f"127.0.0.1:{free_port()}",
        "TELEDERM_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "TELEDERM_WORKLIST_ENABLED": "false", "TELEDERM_HL7_ACK_MODE": mode,
        "TELEDERM_IMAGES_EXAMPLE_DEVICES": "true",  # the shipped mappings, as the demo
        **({"TELEDERM_DATABASE_KEY": "bench-only-key"} if encrypted else {})})
    return RunningConnector(config)


def wait_applied(running, deadline: float = 900) -> float:
    """Wall-clock time when no stored message is left to apply. A look that finds the store
    busy (the applier writing on a loaded machine) is repeated: the bench only watches."""
    from connector.domain.errors import StoreUnavailable
    from connector.store import inbox

    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        try:
            with running.services.store.engine.connect() as conn:
                waiting, _ = inbox.backlog(conn)
        except StoreUnavailable:
            continue
        if not waiting:
            return time.time()
        time.sleep(0.05)
    raise SystemExit("stored messages were still waiting after the deadline")


def parse_only_rate(n: int) -> float:
    raw = order(0, "P").decode("utf-8")
    start = time.perf_counter()
    for _ in range(n):
        hl7.parse(raw)
    return n / (time.perf_counter() - start)


def percentiles(latencies: list[float]) -> str:
    q = statistics.quantiles(latencies, n=100)
    return f"{q[49] * 1000:.1f} ms / {q[98] * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--adt", type=int, default=100_000)
    parser.add_argument("--encrypted", action="store_true",
                        help="the SQLite store encrypted with SQLCipher ([database] key)")
    args = parser.parse_args()
    n = args.messages
    reference = parse_only_rate(2000)
    rows = [("reference: python-hl7 parse only (same ORM)", f"{reference:,.0f} msg/s", "1")]

    def rate_row(label: str, count: int, start: float, end: float,
                 cpu: float | None = None) -> None:
        """`cpu`: CPU seconds the connector's process used meanwhile (all its threads)."""
        rate = count / (end - start)
        per_message = f"; connector CPU {cpu / count * 1e6:,.0f} µs/msg" if cpu else ""
        rows.append((label, f"{rate:,.0f} msg/s{per_message}", f"{rate / reference:.3f}"))
        print(f"{label}: {rate:,.0f} msg/s{per_message}", flush=True)

    senders = Senders()
    try:
        for mode in ("processing", "storage"):
            with connector(mode, args.encrypted) as running:
                port = running.hl7_port
                for conns in (1, 4):
                    cpu = time.process_time()
                    start, end, _ = senders.run(port, "order", f"{mode[0]}{conns}", conns,
                                                n // conns)
                    rate_row(f"ORM ingest, ack_mode={mode}, {conns} connection(s), {n} msgs",
                             n, start, end, time.process_time() - cpu)
                    if mode == "storage":
                        applied = wait_applied(running)
                        rate_row(f"  ... the same {n} orders applied (cases opened), "
                                 "first sent to last applied", n, start, applied,
                                 time.process_time() - cpu)
                count = int(args.rate * 10)
                start, end, lat = senders.run(port, "order", f"{mode[0]}L", 1, count,
                                              interval=1 / args.rate, latencies=True)
                rows.append((f"ACK latency at {args.rate:.0f} msg/s offered "
                             f"({count / (end - start):,.0f} msg/s achieved: one connection "
                             f"waits for each ACK), ack_mode={mode}, p50 / p99",
                             percentiles(lat), "—"))
                if mode == "storage":
                    wait_applied(running)
        if args.adt:
            with connector("storage", args.encrypted) as running:
                cpu = time.process_time()
                start, end, _ = senders.run(running.hl7_port, "adt", "R", 4, args.adt // 4)
                rate_row(f"ADT^A08 backlog replay, 4 connections, {args.adt} msgs: ACKed",
                         args.adt, start, end, time.process_time() - cpu)
                applied = wait_applied(running)
                rows.append((f"ADT^A08 backlog replay, {args.adt} msgs: first sent to last "
                             "applied", f"{applied - start:,.1f} s",
                             f"{args.adt / (applied - start) / reference:.3f}"))
    finally:
        senders.close()

    lines = [
        f"\n## hl7_ingest — {dt.datetime.now().isoformat(timespec='seconds')} "
        f"({platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, SQLite WAL "
        f"synchronous=FULL{', SQLCipher' if args.encrypted else ''}, senders in separate "
        "processes)\n",
        "| measure | value | ratio to python-hl7 parse-only |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
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
