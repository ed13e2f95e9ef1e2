"""TeleDerm plugin for Orthanc (orthanc-python 4.0): tell the connector when a study is stable,
and show the case beside its photos (routes and Orthanc Explorer panel: `telederm_seat.py`).

Loaded by Orthanc through the "PythonScript" configuration key; it runs inside Orthanc's
embedded Python (Debian's 3.11), not the connector's virtualenv, and imports nothing from the
`connector` package so that a broken connector can never stop Orthanc from starting.

Shape (orthanc-book samples `changes-deadlock-3.0.py`, `pynetdicom.py`): the change callback
runs on Orthanc's own thread, so it only puts `(change, orthanc_id)` on an in-process queue; a
worker thread, started on ORTHANC_STARTED and stopped on ORTHANC_STOPPED, reads the Study
Instance UID and POSTs the event to the connector over loopback. Delivery is best effort: if
the connector is down or not configured the event is logged and dropped, and the connector's
Changes Log catch-up (`/changes?since=N` from a cursor saved in the store;
`connector/workflow/catch_up.py`) finds the stable study later.

Configuration, in the "TeleDerm" section of Orthanc's configuration:
  ConnectorUrl    base URL of the connector (e.g. http://127.0.0.1:8780); empty = drop events
  ConnectorToken  bearer token sent with every notification
  ConnectorCaFile the connector's certificate (PEM) when its URL is https://
  SitePackages    folders prepended to sys.path (the connector's virtualenv site-packages)
"""

import datetime
import json
import os
import queue
import sys
import threading
import urllib.error
import urllib.request

import orthanc

import telederm_seat  # beside this script: orthanc-python puts its folder on sys.path

PLUGIN_VERSION = "0.1.0"
NOTIFY_PATH = "/api/internal/orthanc/stable-study"
NOTIFY_TIMEOUT = 5  # seconds; the worker, never Orthanc, waits this long

_settings = json.loads(orthanc.GetConfiguration()).get("TeleDerm", {})
_connector_url = (_settings.get("ConnectorUrl") or "").rstrip("/")
_connector_token = _settings.get("ConnectorToken") or ""
for _path in reversed(_settings.get("SitePackages") or []):
    if _path not in sys.path:
        sys.path.insert(0, _path)

_opener = telederm_seat.connector_opener(_settings.get("ConnectorCaFile") or "")
_events = queue.Queue()
_STOP = object()
_worker = None
# Written by the worker thread only, read by the status route.
_delivery = {"delivered": 0, "dropped": 0, "last_ok": None, "last_error": None, "last_error_text": None}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _study_uid(orthanc_id):
    """StudyInstanceUID of a study, or None if it vanished meanwhile (worker thread only)."""
    try:
        study = json.loads(orthanc.RestApiGet("/studies/" + orthanc_id))
    except (orthanc.OrthancException, ValueError):
        return None
    return study.get("MainDicomTags", {}).get("StudyInstanceUID")


def _drop(orthanc_id, reason):
    _delivery["dropped"] += 1
    _delivery["last_error"] = _now()
    _delivery["last_error_text"] = reason
    orthanc.LogWarning(
        "TeleDerm: stable study %s not delivered (%s); the connector's catch-up will find it"
        % (orthanc_id, reason)
    )


def _deliver(change, orthanc_id):
    if not _connector_url:
        _drop(orthanc_id, "no TeleDerm.ConnectorUrl configured")
        return
    body = {"change": change, "orthanc_id": orthanc_id}
    study_uid = _study_uid(orthanc_id)
    if study_uid:
        body["study_uid"] = study_uid
    headers = {"Content-Type": "application/json"}
    if _connector_token:
        headers["Authorization"] = "Bearer " + _connector_token
    request = urllib.request.Request(
        _connector_url + NOTIFY_PATH, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with _opener.open(request, timeout=NOTIFY_TIMEOUT) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as error:
        _drop(orthanc_id, "%s: %s" % (type(error).__name__, error))
        return
    _delivery["delivered"] += 1
    _delivery["last_ok"] = _now()


def _work():
    while True:
        item = _events.get()
        if item is _STOP:
            return
        try:
            _deliver(*item)
        except Exception as error:  # keep the worker alive whatever one event does
            _drop(item[1], "unexpected %s: %s" % (type(error).__name__, error))


def _on_change(change_type, level, resource_id):
    """Runs on Orthanc's thread: queue and return; never call the REST API from here."""
    global _worker
    if change_type == orthanc.ChangeType.STABLE_STUDY:
        _events.put(("StableStudy", resource_id))
    elif change_type == orthanc.ChangeType.ORTHANC_STARTED:
        _worker = threading.Thread(target=_work, name="telederm-notify", daemon=True)
        _worker.start()
    elif change_type == orthanc.ChangeType.ORTHANC_STOPPED and _worker is not None:
        _events.put(_STOP)
        _worker.join(NOTIFY_TIMEOUT + 1)
        _worker = None


def _on_status(output, uri, **request):
    """GET /telederm/status: is the plugin loaded, is it keeping up, did the last delivery work."""
    if request.get("method") != "GET":
        output.SendMethodNotAllowed("GET")
        return
    status = dict(
        _delivery,
        plugin_version=PLUGIN_VERSION,
        pid=os.getpid(),
        queue_length=_events.qsize(),
        worker_alive=_worker is not None and _worker.is_alive(),
        connector_url=_connector_url,
    )
    output.AnswerBuffer(json.dumps(status), "application/json")


orthanc.RegisterOnChangeCallback(_on_change)
orthanc.RegisterRestCallback("/telederm/status", _on_status)
# The case beside its photos: context route, Orthanc Explorer panel, worklist page.
telederm_seat.Seat(_connector_url, _connector_token, _opener).register()
