"""Interoperability of the inbound MLLP side (issue #4, "MLLP done right"), over real sockets.

A running connector (`RunningConnector`, real `hl7_intake.handle`, real SQLite) configured
with two `[[hl7.listeners]]`: `ehr` (plain) and `lab-tls` (mutual TLS). Against it: python-hl7's
`mllp_send` command unmodified, a raw-socket client, French accents in UTF-8 and 8859/15,
messages split into tiny TCP writes, garbage between frames, a stalled partial frame, and the
configured size limit. A ~10 MB PDF goes to a listener whose handler parses it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from connector.config import load_config
from connector.hl7.ack import build_ack, read_ack
from connector.hl7.client import send_message
from connector.hl7.errors import DeliveryError
from connector.hl7.mllp import FrameReader, frame
from connector.hl7.parse import decode, encode, parse
from connector.hl7.tls import client_context
from connector.ports import free_port
from connector.runtime.server import RunningConnector
from tests.support.cli import EXAMPLE_DEVICES

MLLP_SEND = Path(sys.executable).with_name("mllp_send")
REPO = Path(__file__).resolve().parents[3]
READ_TIMEOUT = 1.0  # [hl7] read_timeout of the running connector: a stalled frame is closed
_serial = iter(range(1, 10_000))
# The patient's consent to the tele-expertise, as `connector.demo.demo_order` carries it.
CONSENT = "OBX|1|CWE|CONSENT^Consentement du patient à la télé-expertise^L||Y^Oui^HL70136||||||F"


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def running(tmp_path_factory, pki):
    work = tmp_path_factory.mktemp("mllp-interop")
    http_port = free_port()
    ehr_port = free_port((http_port,))
    lab_port = free_port((http_port, ehr_port))
    config_path = work / "telederm.toml"
    config_path.write_text(f"""
data_dir = "{work / 'data'}"
[http]
listen = "127.0.0.1:{http_port}"
[orthanc]
managed = false
[worklist]
enabled = false
[hl7]
max_message_mb = 0.25
idle_timeout = 30
read_timeout = {READ_TIMEOUT}
[[hl7.listeners]]
name = "ehr"
listen = "127.0.0.1:{ehr_port}"
[[hl7.listeners]]
name = "lab-tls"
listen = "127.0.0.1:{lab_port}"
cert_file = "{pki.server_cert}"
key_file = "{pki.server_key}"
client_ca_file = "{pki.ca}"
require_client_cert = true
""", encoding="utf-8")
    records = Records()
    logger = logging.getLogger("connector.hl7.listener")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(records)
    connector = RunningConnector(load_config(config_path, environ=EXAMPLE_DEVICES)).start()
    connector.log_lines = records.lines
    yield connector
    connector.stop()
    logger.removeHandler(records)
    logger.setLevel(level)


def orm(family: str, given: str, charset: str = "UNICODE UTF-8") -> tuple[str, str, str]:
    """A new order for a new patient; returns (text, MSH-10, PID-3.1)."""
    n = next(_serial)
    control_id, patient_id = f"IOP-{n:04d}", f"IPP-IOP-{n:04d}"
    text = "\r".join([
        f"MSH|^~\\&|DPI_HOPITAL|CHU_DEMO|TELEDERM|CHU_DEMO|20261203101500||ORM^O01^ORM_O01"
        f"|{control_id}|P|2.5|||||FRA|{charset}",
        f"PID|1||{patient_id}^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||{family}^{given}^^^^^L"
        "||19580312|F",
        "PV1|1|O",
        f"ORC|NW|PL-IOP-{n:04d}^DPI_HOPITAL||||||||||801234567897^MARTIN^Jean^^^DR",
        f"OBR|1|PL-IOP-{n:04d}^DPI_HOPITAL||TELEDERM^Télé-expertise dermatologie^L|R"
        "||||||||Lésion pigmentée, évolutive||||801234567897^MARTIN^Jean",
        CONSENT,
    ]) + "\r"
    return text, control_id, patient_id


def read_frames(sock: socket.socket, count: int, timeout: float = 30) -> list[bytes]:
    reader, frames = FrameReader(), []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        data = sock.recv(65536)
        assert data, f"connection closed after {len(frames)}/{count} answers"
        frames += reader.feed(data)
    return frames


def stored_name(running, patient_id: str) -> tuple[str, str] | None:
    with running.services.store.engine.connect() as conn:
        row = conn.execute(text("SELECT family, given FROM patients WHERE patient_id = :id"),
                           {"id": patient_id}).one_or_none()
    return tuple(row) if row else None


def ack_charset(raw_ack: bytes) -> str:
    msh = raw_ack.split(b"\r", 1)[0].decode("ascii")
    fields = msh.split("|")
    return fields[17] if len(fields) > 17 else ""


# --- several listeners ----------------------------------------------------------------------

def test_every_listener_is_started_and_logs_its_name(running):
    ports = running.hl7_ports
    assert set(ports) == {"ehr", "lab-tls"} and running.hl7_port == ports["ehr"]
    lines = running.log_lines
    assert f"HL7 listener ehr on 127.0.0.1:{ports['ehr']}" in lines
    assert f"HL7 listener lab-tls on 127.0.0.1:{ports['lab-tls']} (TLS)" in lines


def test_the_mutual_tls_listener_runs_the_real_handler(running, pki):
    port = running.hl7_ports["lab-tls"]
    message, control_id, patient_id = orm("Lefèvre", "Zoé")
    good = client_context(pki.ca, pki.client_cert, pki.client_key)
    ack = send_message("127.0.0.1", port, message, timeout=30, tls=good)
    assert (ack.code, ack.control_id_acked) == ("AA", control_id)
    assert stored_name(running, patient_id) == ("Lefèvre", "Zoé")
    other, _, other_patient = orm("Sans", "Certificat")
    with pytest.raises(DeliveryError):
        send_message("127.0.0.1", port, other, timeout=30, tls=client_context(pki.ca))
    assert stored_name(running, other_patient) is None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as plain:
        plain.sendall(frame(encode(other)))
        try:
            assert b"MSA" not in plain.recv(65536)
        except ConnectionResetError:
            pass
    # Both listeners still serve.
    assert send_message("127.0.0.1", port, orm("Après", "Refus")[0], timeout=30,
                        tls=good).code == "AA"
    assert send_message("127.0.0.1", running.hl7_ports["ehr"], orm("Ehr", "Toujours")[0],
                        timeout=30).code == "AA"


# --- python-hl7's mllp_send, unmodified --------------------------------------------------------

@pytest.mark.parametrize("loose", [False, True], ids=["framed-file", "loose-file"])
def test_mllp_send_command_sends_a_file_of_several_messages(running, tmp_path, loose):
    messages = [orm("Lefèvre", "Zoé"), orm("Œuvre", "Noël", "8859/15"), orm("Dupont", "Jean")]
    path = tmp_path / "orders.hl7"
    if loose:  # one segment a line, messages one after another (mllp_send --loose)
        path.write_bytes(b"".join(encode(m.replace("\r", "\n")) for m, _, _ in messages))
    else:  # each message in an MLLP block
        path.write_bytes(b"".join(frame(encode(m)) for m, _, _ in messages))
    command = [str(MLLP_SEND), "--port", str(running.hl7_ports["ehr"]), "--file", str(path)]
    result = subprocess.run(command + (["--loose"] if loose else []) + ["127.0.0.1"],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    acks = FrameReader().feed(result.stdout)  # it prints each framed ACK as received
    assert [(read_ack(a).code, read_ack(a).control_id_acked) for a in acks] == \
        [("AA", control_id) for _, control_id, _ in messages]
    assert [ack_charset(a) for a in acks] == ["UNICODE UTF-8", "8859/15", "UNICODE UTF-8"]
    assert stored_name(running, messages[1][2]) == ("Œuvre", "Noël")


INBOUND_SAMPLES = {  # conformance/samples/ inbound messages -> (MSA-1, ERR-3 of the first ERR)
    "orm_o01_nw.hl7": ("AA", None),
    "omg_o19_nw.hl7": ("AA", None),
    "orm_o01_nw_questionnaire.hl7": ("AA", None),
    "orm_o01_no_pid3.hl7": ("AE", "101"),
}


@pytest.mark.parametrize("name", list(INBOUND_SAMPLES))
def test_mllp_send_sends_each_inbound_sample_file_unmodified(running, name):
    """The file as stored is what a sender sends: mllp_send takes it as it is (`--loose` frames
    a file of bare messages; it has no line ends to convert), and its bytes arrive as stored."""
    path = REPO / "conformance" / "samples" / name
    stored = path.read_bytes()
    command = [str(MLLP_SEND), "--port", str(running.hl7_ports["ehr"]), "--file", str(path),
               "--loose", "127.0.0.1"]
    result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    (raw,) = FrameReader().feed(result.stdout)
    ack = read_ack(raw)
    assert (ack.code, ack.control_id_acked) == (INBOUND_SAMPLES[name][0], parse(stored).control_id)
    assert (ack.errors[0].hl7_code if ack.errors else None) == INBOUND_SAMPLES[name][1]
    with running.services.store.engine.connect() as conn:
        received = conn.execute(text("SELECT raw FROM inbox WHERE control_id = :id"),
                                {"id": ack.control_id_acked}).scalar_one()
    assert received == stored.rstrip(b"\r")  # mllp_send strips the last segment's CR only


# --- raw sockets, charsets, partial frames, garbage ------------------------------------------

def test_raw_socket_client_several_messages_on_one_connection(running):
    messages = [orm("Martin", f"Client{i}") for i in range(3)]
    with socket.create_connection(("127.0.0.1", running.hl7_ports["ehr"]), timeout=30) as sock:
        for message, control_id, _ in messages:
            sock.sendall(frame(encode(message)))
            (raw,) = read_frames(sock, 1)
            assert (read_ack(raw).code, read_ack(raw).control_id_acked) == ("AA", control_id)


@pytest.mark.parametrize("charset,codec", [("UNICODE UTF-8", "utf-8"),
                                           ("8859/15", "iso8859-15")])
@pytest.mark.parametrize("family,given", [("Lefèvre", "Zoé"), ("Œuvre", "Cœur-Éloïse")])
def test_french_accents_round_trip(running, charset, codec, family, given):
    message, control_id, patient_id = orm(family, given, charset)
    raw = message.encode(codec)
    assert raw == encode(message)  # encode() follows MSH-18
    with socket.create_connection(("127.0.0.1", running.hl7_ports["ehr"]), timeout=30) as sock:
        sock.sendall(frame(raw))
        (answer,) = read_frames(sock, 1)
    assert ack_charset(answer) == charset  # the ACK is in the charset the message declared
    answer.decode(codec)
    ack = read_ack(answer)
    assert (ack.code, ack.control_id_acked) == ("AA", control_id), ack
    assert stored_name(running, patient_id) == (family, given)
    assert parse(raw).value("PID-5.1") == family  # and the parser reads what was sent


def test_8859_1_cannot_carry_oe_but_8859_15_can():
    with pytest.raises(UnicodeEncodeError):
        "Œuvre".encode("iso8859-1")
    assert decode(orm("Œuvre", "Zoé", "8859/15")[0].encode("iso8859-15")).count("Œuvre") == 1


def test_messages_split_into_tiny_tcp_writes_are_all_answered(running):
    first, second, third = (orm("Lefèvre", f"Octet{i}") for i in range(3))
    with socket.create_connection(("127.0.0.1", running.hl7_ports["ehr"]), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in frame(encode(first[0])):  # byte by byte
            sock.sendall(bytes([byte]))
        payload = frame(encode(second[0])) + frame(encode(third[0]))
        for i in range(0, len(payload), 7):  # 7 bytes at a time, frames straddling writes
            sock.sendall(payload[i:i + 7])
        acks = [read_ack(raw) for raw in read_frames(sock, 3)]
    assert [(a.code, a.control_id_acked) for a in acks] == \
        [("AA", first[1]), ("AA", second[1]), ("AA", third[1])]
    assert stored_name(running, first[2]) == ("Lefèvre", "Octet0")


def test_garbage_between_frames_loses_no_later_message(running):
    orders = [orm("Garbage", f"Survivor{i}") for i in range(4)]
    junk = [b"hello\r\n", b"\x00\xff\xfe" * 10, b"\x1c\x0d", b"\x0bMSH|^~\\&|CUT SHORT"]
    payload = b"".join(j + frame(encode(m)) for j, (m, _, _) in zip(junk, orders))
    with socket.create_connection(("127.0.0.1", running.hl7_ports["ehr"]), timeout=30) as sock:
        sock.sendall(payload)
        acks = [read_ack(raw) for raw in read_frames(sock, 4)]
        # The cut-short frame got no answer of its own: the connection is quiet, and still open.
        sock.sendall(frame(encode(orm("Garbage", "After")[0])))
        assert read_ack(read_frames(sock, 1)[0]).code == "AA"
    assert [(a.code, a.control_id_acked) for a in acks] == [("AA", c) for _, c, _ in orders]


def test_a_stalled_partial_frame_is_closed_after_read_timeout_but_an_idle_one_is_not(running):
    port = running.hl7_ports["ehr"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as idle:
        idle.sendall(frame(encode(orm("Idle", "Before")[0])))
        read_frames(idle, 1)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
            stalled.sendall(b"\x0b" + encode(orm("Stalled", "Half")[0])[:40])
            assert stalled.recv(10) == b""  # closed by the listener (within the 30 s deadline)
        # `idle` has now been silent for at least read_timeout, between messages: still open.
        message, control_id, _ = orm("Idle", "After")
        idle.sendall(frame(encode(message)))
        assert read_ack(read_frames(idle, 1)[0]).control_id_acked == control_id
    assert any("stalled (partial frame)" in line for line in running.log_lines)


def test_max_message_mb_from_the_config_applies(running):
    message, control_id, _ = orm("Gros", "Message")
    big = message + "NTE|1||" + "x" * 300_000 + "\r"  # over 0.25 MB
    after, after_id, _ = orm("Petit", "Message")
    with socket.create_connection(("127.0.0.1", running.hl7_ports["ehr"]), timeout=30) as sock:
        sock.sendall(frame(encode(big)) + frame(encode(after)))
        too_big, next_one = (read_ack(raw) for raw in read_frames(sock, 2))
    assert (too_big.code, too_big.control_id_acked) == ("AE", control_id)
    assert too_big.errors[0].hl7_code == "207"
    assert (next_one.code, next_one.control_id_acked) == ("AA", after_id)


# --- a 10 MB PDF ------------------------------------------------------------------------------

def test_a_10_mb_pdf_in_an_oru_is_received_parsed_and_acknowledged(listener_on):
    pdf = b"%PDF-1.7\n" + os.urandom(10 * 1024 * 1024) + b"\n%%EOF\n"
    seen = {}

    def handler(raw: bytes, peer: str) -> bytes:
        msg = parse(raw)
        data = base64.b64decode(msg.value("OBX-5.5"), validate=True)
        seen[msg.control_id] = (msg.value("OBX-5.3"), hashlib.sha256(data).hexdigest())
        return encode(build_ack(msg, "AA", [], "ACK-" + msg.control_id, "20261203120000"))

    listener = listener_on(handler)  # the default limit: 20 MB
    oru = ("MSH|^~\\&|DERMATO|CABINET|TELEDERM|TD|20261203120000||ORU^R01^ORU_R01|PDF-1|P|2.5"
           "||||||UNICODE UTF-8\rPID|1||123^^^CHU||LEFÈVRE^Zoé\rOBR|1|PL1|FL1|TELEDERM\r"
           "OBX|1|ED|PDF^Compte rendu||^AP^PDF^Base64^" + base64.b64encode(pdf).decode()
           + "||||||F\r")
    assert len(oru) > 13 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", listener.port), timeout=60) as sock:
        sock.sendall(frame(encode(oru)))
        (raw,) = read_frames(sock, 1, timeout=120)
        ack = read_ack(raw)
        assert (ack.code, ack.control_id_acked) == ("AA", "PDF-1")
        small = oru.split("OBX|")[0].replace("PDF-1", "PDF-2")
        sock.sendall(frame(encode(small)))  # the connection goes on
        assert read_ack(read_frames(sock, 1)[0]).control_id_acked == "PDF-2"
    assert seen["PDF-1"] == ("PDF", hashlib.sha256(pdf).hexdigest())
