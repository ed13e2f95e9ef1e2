"""`telederm demo`: one tele-expertise case end to end on the embedded default.

It starts a local Orthanc and the connector on free loopback ports, two MLLP peers standing in
for the requesting EHR and the accounting system (real sockets; they print what they get),
sends an order, uploads two photos (one carrying an EXIF block with GPS and a serial number,
which must not reach the archive), waits for the study to be stable, posts the report, waits
for the ORU and the DFT to be acknowledged, prints what happened, and stops what it started.

With `--keep` it then opens a second case that waits for an answer, prints an admin API token
and the logins of a demo dermatologist and a demo admin for the /ui/ pages, and runs until
Ctrl-C. SIGTERM and SIGHUP (`kill`, a closed terminal, a service manager) end it as Ctrl-C
does, at any point, so the Orthanc it started never outlives it; the stopping itself is not
interrupted by a second signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import secrets
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx

from .config import ApiSection, ApiToken, Config, Destination, OrthancModality, load_config
from .entrypoints.ui import passwords
from .hl7.ack import build_ack
from .hl7.client import send_message
from .hl7.listener import MllpListener
from .hl7.parse import encode, parse
from .ports import free_port
from .reports.signing import CERT_FILE, KEY_FILE, make_trial_pair
from .runtime.server import RunningConnector


class RecordingPeer:
    """A real MLLP server that records every message and answers AA (an EHR or accounting stand-in)."""

    def __init__(self, name: str, *, echo: bool = False):
        self.name = name
        self.echo = echo
        self.messages: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"peer-{name}", daemon=True)

    def _handle(self, raw: bytes, peer: str) -> bytes:
        msg = parse(raw)
        text = raw.decode("utf-8")
        self.messages.append(text)
        if self.echo:
            print(f"\n[{self.name}] received {msg.message_type}^{msg.trigger} {msg.control_id}:")
            for seg in text.split("\r"):
                if seg:
                    print("   " + (seg[:150] + f"... ({len(seg)} chars)" if len(seg) > 150 else seg))
        return encode(build_ack(msg, "AA", [], f"{self.name.upper()[:6]}{len(self.messages)}",
                                time.strftime("%Y%m%d%H%M%S"), sending=(self.name.upper(), "")))

    def _run(self) -> None:
        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            listener = MllpListener("127.0.0.1", 0, self._handle)
            await listener.start()
            self.port = listener.port
            self._ready.set()
            await self._stop.wait()
            await listener.stop()
        asyncio.run(main())

    def start(self) -> "RecordingPeer":
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def demo_order(control_id: str, placer: str) -> str:
    segments = [
        f"MSH|^~\\&|DPI_HOPITAL|CHU_DEMO|TELEDERM|CHU_DEMO|{time.strftime('%Y%m%d%H%M%S')}||ORM^O01^ORM_O01|{control_id}|P|2.5|||||FRA|UNICODE UTF-8",
        "PID|1||IPP123456^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||DUPONT^Hélène^^^^^L||19580312|F",
        "PV1|1|O",
        f"ORC|NW|{placer}^DPI_HOPITAL||||||||||801234567897^MARTIN^Jean^^^DR^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
        f"OBR|1|{placer}^DPI_HOPITAL||TELEDERM^Télé-expertise dermatologie^L|R||||||||Lésion pigmentée du dos apparue il y a 6 mois, évolutive. Mélanome ?||||801234567897^MARTIN^Jean",
        "NTE|1||Patiente phototype II, antécédent familial de mélanome.",
        # the patient's consent to the tele-expertise (required: mappings/hl7/orm_o01.toml)
        "OBX|1|CWE|CONSENT^Consentement du patient à la télé-expertise^L||Y^Oui^HL70136||||||F",
    ]
    return "\r".join(segments) + "\r"


def demo_photo(with_exif: bool) -> bytes:
    """A synthetic lesion photo; the second one carries the private EXIF a phone would add."""
    from PIL import Image, ImageDraw, ImageFilter

    img = Image.new("RGB", (640, 480), (224, 180, 150))
    draw = ImageDraw.Draw(img)
    draw.ellipse((260, 180, 390, 290), fill=(92, 58, 40))
    draw.ellipse((300, 210, 350, 260), fill=(60, 35, 25))
    img = img.filter(ImageFilter.GaussianBlur(2))
    out = io.BytesIO()
    if with_exif:
        exif = Image.Exif()
        exif[0x010F] = "DemoPhone"      # Make
        exif[0x0110] = "DP-1"           # Model
        exif[0xA431] = "SERIAL-0042"    # BodySerialNumber
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPS
        img.save(out, "JPEG", quality=90, exif=exif)
    else:
        img.save(out, "JPEG", quality=90)
    return out.getvalue()


DEMO_DEVICE_AE = "DERMOCAM"


def local_config(work: Path, *, ehr_port: int, accounting_port: int, token: str,
                 stable_age: int = 2) -> Config:
    """Everything on free loopback ports in `work`: Orthanc, HL7, HTTP, and the two peers;
    the example dermatoscope (AE title DEMO_DEVICE_AE, on this machine) may send to Orthanc."""
    taken: list[int] = []
    for _ in range(4):
        taken.append(free_port(tuple(taken)))
    http_port, hl7_port, orthanc_port, dicom_port = taken
    keys = work / "keys"
    if not (keys / CERT_FILE).is_file():  # a restart in the same folder keeps its pair
        make_trial_pair(keys, common_name="TeleDerm demo facility",
                        now=dt.datetime.now(dt.timezone.utc))
    base = load_config(None, environ={
        "TELEDERM_REPORTS_SIGNING_KEY": str(keys / KEY_FILE),
        "TELEDERM_REPORTS_SIGNING_CERT": str(keys / CERT_FILE),
        "TELEDERM_DATA_DIR": str(work),
        "TELEDERM_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "TELEDERM_HL7_LISTEN": f"127.0.0.1:{hl7_port}",
        "TELEDERM_ORTHANC_URL": f"http://127.0.0.1:{orthanc_port}",
        "TELEDERM_ORTHANC_DICOM_PORT": str(dicom_port),
        "TELEDERM_ORTHANC_PASSWORD": secrets.token_urlsafe(12),
        "TELEDERM_ORTHANC_STABLE_AGE": str(stable_age),
        "TELEDERM_FACILITY_NAME": "TELEDERM_DEMO",
        "TELEDERM_IMAGES_EXAMPLE_DEVICES": "true",
    })
    device = OrthancModality(name="dermatoscope", ae_title=DEMO_DEVICE_AE, host="127.0.0.1",
                             port=104)
    return base.model_copy(update={
        "orthanc": base.orthanc.model_copy(update={"modalities": (device,)}),
        "destinations": (
            Destination(name="ehr", role="requester", address=f"127.0.0.1:{ehr_port}"),
            Destination(name="accounting", role="accounting",
                        address=f"127.0.0.1:{accounting_port}")),
        "api": ApiSection(tokens=(ApiToken(name="demo", role="admin", token=token),))})


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# The dermatologist who signs the demo's report and logs in to /ui/ with --keep.
DERMATOLOGIST = ("810001234567", "LEROY^Claire")
# /ui/ users of --keep: (login, role, FAMILY^GIVEN, practitioner id)
DEMO_USERS = (("dermato", "specialist", DERMATOLOGIST[1], DERMATOLOGIST[0]),
              ("admin", "admin", "ADMIN^Demo", ""))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _uninterrupted():
    """Ctrl-C, SIGTERM and SIGHUP ignored while the block runs (stopping what was started)."""
    caught = (signal.SIGINT, *STOP_SIGNALS)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in caught}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_demo(*, keep: bool = False) -> int:
    """The demo from the command line (the main thread: it takes SIGTERM and SIGHUP)."""
    previous = {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS}
    try:
        return _run(keep)
    except KeyboardInterrupt:
        print("\nInterrupted before the end of the demo.", flush=True)
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _demo_users(running: RunningConnector) -> list[tuple[str, str, str]]:
    """Add the /ui/ users of DEMO_USERS with fresh passwords: (login, role, password)."""
    out = []
    with running.services.unit() as uow:
        for login, role, name, practitioner_id in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            uow.users.add(login=login, name=name, role=role, practitioner_id=practitioner_id,
                          password=passwords.hash_password(password), now=uow.moment.iso)
            out.append((login, role, password))
    return out


def _waiting_case(api: httpx.Client, running: RunningConnector) -> str:
    """A second order with one photo, left waiting for the dermatologist's answer."""
    send_message("127.0.0.1", running.hl7_port, demo_order("ORD0002", "CMD-2026-0002"))
    accession = api.get("/api/cases", params={"placer_order_number": "CMD-2026-0002"}
                        ).json()[0]["accession"]
    api.post(f"/api/cases/{accession}/images",
             files={"file": ("lesion.jpg", demo_photo(False), "image/jpeg")},
             data={"kind": "photo", "site": "66643007", "laterality": "U",
                   "description": "Dos, lésion pigmentée"}).raise_for_status()
    return accession


def _run(keep: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="telederm-demo-"))
    token = secrets.token_urlsafe(16)
    ehr = RecordingPeer("ehr", echo=True).start()
    accounting = RecordingPeer("accounting", echo=True).start()
    config = local_config(work, ehr_port=ehr.port, accounting_port=accounting.port, token=token)
    print(f"TeleDerm demo — data folder {work}")
    print("Starting Orthanc and the connector ...", flush=True)
    running = RunningConnector(config).start()
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
        print(f"  Orthanc {running.orthanc.url}  HL7 127.0.0.1:{running.hl7_port}  "
              f"API http://127.0.0.1:{running.http_port}/docs")

        print("\n1. The requesting EHR sends ORM^O01 (new order) over MLLP")
        ack = send_message("127.0.0.1", running.hl7_port, demo_order("ORD0001", "CMD-2026-0001"))
        print(f"   ACK {ack.code} for {ack.control_id_acked}")
        case = api.get("/api/cases", params={"placer_order_number": "CMD-2026-0001"}).json()[0]
        accession = case["accession"]
        print(f"   case {accession} {case['status']}, Study Instance UID {case['study_instance_uid']}")

        print("\n2. Two photos are uploaded (the second carries EXIF with GPS and a serial number)")
        for name, with_exif, site in (("overview.jpg", False, "66643007"),
                                      ("closeup.jpg", True, "66643007")):
            r = api.post(f"/api/cases/{accession}/images",
                         files={"file": (name, demo_photo(with_exif), "image/jpeg")},
                         data={"kind": "photo", "site": site, "laterality": "U",
                               "description": "Dos, lésion pigmentée"})
            r.raise_for_status()
            print(f"   {name}: SOP Instance UID {r.json()['images'][0]['sop_instance_uid']}")
        status = wait_for(lambda: (s := api.get(f"/api/cases/{accession}").json()["status"]) == "READY" and s,
                       60, "the study to be stored and stable in Orthanc")
        print(f"   archived in Orthanc; study stable -> case {status}")

        print("\n3. The dermatologist answers")
        r = api.post(f"/api/cases/{accession}/report", json={
            "text": "Lésion pigmentée asymétrique de 12 mm, polychrome.\n"
                    "Aspect suspect : exérèse à programmer rapidement.",
            "conduct": "biopsy",
            "specialist": {"id": DERMATOLOGIST[0], "name": DERMATOLOGIST[1]}})
        r.raise_for_status()
        print(f"   report v{r.json()['version']} signed, digest {r.json()['digest'][:16]}…")
        wait_for(lambda: ehr.messages and accounting.messages, 60, "the ORU and the DFT to be delivered")
        wait_for(lambda: api.get("/api/stats").json()["outbox"]["pending"] == 0, 60, "the outbox to drain")

        detail = api.get(f"/api/cases/{accession}").json()
        study = running.services.archive.find_study(detail["study_instance_uid"])
        instances = running.services.archive.study_instances(detail["study_instance_uid"])
        print("\n=== Result ===")
        print(f"Case {accession}: {detail['status']}")
        print(f"Orthanc holds {len(instances)} instance(s): "
              + ", ".join(sorted({i['Modality'] for i in instances})))
        print(f"Open the study: {running.services.archive.explorer_url(detail['study_instance_uid'])}"
              f"  (user {config.orthanc.username}, password in {work}/orthanc/orthanc.json)"
              if study else "Study not found in Orthanc")
        print(f"ORU^R01 received by the EHR: {len(ehr.messages)}; "
              f"DFT^P03 received by accounting: {len(accounting.messages)}")
        for line in detail["charges"]:
            print(f"   charge {line['transaction_id']}: {line['code']} ({line['role']}) "
                  f"{line['amount']} EUR {line['type']}, {line['status']}")
        if keep:
            waiting = _waiting_case(api, running)
            base = f"http://127.0.0.1:{running.http_port}"
            print(f"\nCase {waiting} waits for an answer. Pages for people: {base}/ui/")
            for login, role, password in _demo_users(running):
                print(f"   login {login} ({role}), password {password}")
            print(f"Admin token: {token}  (API: Authorization: Bearer …, or Authorize on "
                  f"{base}/docs)")
            print("Running until Ctrl-C (or SIGTERM) ...", flush=True)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        with _uninterrupted():
            running.stop()
            ehr.stop()
            accounting.stop()
            print("\nStopped Orthanc, the connector and the peers.", flush=True)
