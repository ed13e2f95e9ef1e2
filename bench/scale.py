"""Benchmark: the connector with 1, 2 and 4 serving processes on one PostgreSQL store
(`telederm serve --workers N`), against 1 process on SQLite (the embedded default).

Two measures per layout, in one run on this machine:
- HL7 ingest: ORM^O01 orders over 8 MLLP connections to the one listening address (the
  kernel spreads the connections between the workers, SO_REUSEPORT), `ack_mode =
  "processing"`: each ACK follows its case being opened; from the first message sent to the
  last ACK;
- outbox delivery: HL7 messages queued at once for 8 MLLP destinations (peers answering AA at
  once, in a process of their own), from the commit that queues them to the last one
  delivered (one at a time per destination, the destinations in parallel).

The throwaway PostgreSQL cluster is the tests' (tests/support/postgres.py: fsync off, so the
figures say what the connector does, not what the disk does). The senders run in separate
processes. Results are appended to bench/RESULTS.md; this machine is shared, compare ratios.

Run: .venv/bin/python bench/scale.py [--messages 2000] [--items 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hl7_ingest import Senders  # noqa: E402 - bench/ is the script's folder
from results import append  # noqa: E402

CONNECTIONS = 8
DESTINATIONS = 8
LAYOUTS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 4))


# --- the peers (a process of their own) ------------------------------------------------------

def _peers(ports, ready) -> None:
    from connector.hl7.ack import build_ack
    from connector.hl7.listener import MllpListener
    from connector.hl7.parse import encode, parse

    def answer(raw: bytes, peer: str) -> bytes:
        return encode(build_ack(parse(raw), "AA", [], "PEER", time.strftime("%Y%m%d%H%M%S"),
                                sending=("PEER", "")))

    async def main():
        listeners = [MllpListener("127.0.0.1", port, answer) for port in ports]
        for listener in listeners:
            await listener.start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the connector -----------------------------------------------------------------------------

def config_file(work: Path, db_url: str, hl7_port: int, http_port: int,
                peer_ports: list[int]) -> Path:
    destinations = "".join(f"""
[[destinations]]
name = "d{n}"
role = "requester"
transport = "mllp"
address = "127.0.0.1:{port}"
""" for n, port in enumerate(peer_ports))
    path = work / "telederm.toml"
    path.write_text(f"""data_dir = "{work / 'data'}"
[http]
listen = "127.0.0.1:{http_port}"
[hl7]
listen = "127.0.0.1:{hl7_port}"
ack_mode = "processing"
[database]
url = "{db_url}"
[orthanc]
managed = false
url = "http://127.0.0.1:9"
password = "bench"
[worklist]
enabled = false
{destinations}""", encoding="utf-8")
    return path


def serve(config: Path, workers: int, work: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEDERM_")}
    env["TELEDERM_IMAGES_EXAMPLE_DEVICES"] = "true"  # the shipped mappings, as the demo
    out = open(work / "serve.out", "w")
    proc = subprocess.Popen([sys.executable, "-m", "connector.entrypoints.cli", "serve",
                             "--config", str(config), "--workers", str(workers)],
                            stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while "serving" not in (work / "serve.out").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"serve did not start:\n{(work / 'serve.out').read_text()}")
        time.sleep(0.2)
    return proc


def queue_items(engine, count: int) -> float:
    """Queue `count` HL7 messages over the destinations in one transaction; returns when it
    committed (wall clock)."""
    from connector.demo import demo_order
    from connector.domain.moment import iso
    from connector.store import outbox
    import datetime as dt

    now = iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
    with engine.begin() as conn:
        for i in range(count):
            control_id = f"OB{i}"
            payload = json.dumps({"message": demo_order(control_id, f"PL-OB-{i}"),
                                  "control_id": control_id}).encode()
            outbox.enqueue(conn, kind="hl7.send", destination=f"d{i % DESTINATIONS}",
                           key=f"bench:{i}", payload=payload, accession=None, now=now)
    return time.time()


def wait_delivered(engine, count: int, deadline: float = 900) -> float:
    from sqlalchemy import text
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        with engine.connect() as conn:
            done = conn.execute(text("SELECT count(*) FROM outbox WHERE status = 'done' "
                                     "AND key LIKE 'bench:%'")).scalar()
        if done >= count:
            return time.time()
        time.sleep(0.05)
    raise SystemExit("outbox items were still waiting after the deadline")


def main() -> None:
    from connector.ports import free_port
    from connector.store.db import make_engine
    from tests.support.postgres import running_postgres

    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args()

    peer_ports: list[int] = []
    for _ in range(DESTINATIONS):
        peer_ports.append(free_port(tuple(peer_ports)))
    ready = multiprocessing.get_context("spawn").Event()
    peers = multiprocessing.get_context("spawn").Process(target=_peers, args=(peer_ports, ready),
                                                         daemon=True)
    peers.start()
    ready.wait(60)
    senders = Senders(CONNECTIONS)
    measured: dict[tuple[str, int], tuple[float, float]] = {}
    try:
        with running_postgres() as server:
            for store, workers in LAYOUTS:
                work = Path(tempfile.mkdtemp(prefix="telederm-scale-"))
                db_url = (f"sqlite:///{work / 'data' / 'telederm.db'}" if store == "sqlite"
                          else server.fresh_url())
                hl7_port = free_port(tuple(peer_ports))
                http_port = free_port((*peer_ports, hl7_port))
                proc = serve(config_file(work, db_url, hl7_port, http_port, peer_ports),
                             workers, work)
                try:
                    start, end, _ = senders.run(hl7_port, "order", f"S{store[0]}{workers}x",
                                                CONNECTIONS, args.messages // CONNECTIONS)
                    ingest = args.messages / (end - start)
                    engine = make_engine(db_url, b"bench")  # no audit rows written here
                    try:
                        queued = queue_items(engine, args.items)
                        delivery = args.items / (wait_delivered(engine, args.items) - queued)
                    finally:
                        engine.dispose()
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(120)
                measured[(store, workers)] = (ingest, delivery)
                print(f"{store} x{workers}: ingest {ingest:,.0f} msg/s, delivery "
                      f"{delivery:,.0f} msg/s", flush=True)
    finally:
        senders.close()
        peers.kill()

    base_ingest, base_delivery = measured[("sqlite", 1)]
    rows = [(f"{'reference: ' if store == 'sqlite' else ''}{store}, {workers} process"
             f"{'es' if workers > 1 else ''}",
             f"{ingest:,.0f} msg/s", f"{ingest / base_ingest:.2f}",
             f"{delivery:,.0f} msg/s", f"{delivery / base_delivery:.2f}")
            for (store, workers), (ingest, delivery) in measured.items()]
    append("scale", f"ORM ingest of {args.messages} orders over {CONNECTIONS} MLLP connections "
           f"(ack_mode=processing), delivery of {args.items} queued HL7 messages to "
           f"{DESTINATIONS} MLLP peers; PostgreSQL throwaway cluster, fsync off",
           ("layout", "HL7 ingest", "ratio to SQLite x1", "outbox delivery",
            "ratio to SQLite x1"), rows)


if __name__ == "__main__":
    main()
