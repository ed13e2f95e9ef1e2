"""The dermatologist's seat inside Orthanc: the case beside its photos.

Registered by `telederm_orthanc.py` (which Orthanc loads), behind Orthanc's own authentication:

  GET /telederm/studies/{orthanc-study-id}  the tele-expertise context of the study's case (JSON)
  GET /telederm/worklist                    "Télé-expertise": open cases, most urgent first (HTML)

and an Orthanc Explorer extension (`explorer.js`): a panel on the study page showing that
context with a button to the connector's answer page, and a button on the home page to the
worklist.

Why over HTTP: the plugin never reads the connector's database (it may be PostgreSQL on
another host, and its schema is the connector's own business); it asks the connector's
internal routes with the token the connector handed to Orthanc's configuration.

Threads: these run in REST callbacks, where calling Orthanc's own REST API is allowed (the
deadlock the Orthanc book warns about concerns change callbacks, `telederm_orthanc.py`), so
the Orthanc study id is resolved to its StudyInstanceUID here. The connector is asked with a
CONNECTOR_TIMEOUT-second timeout: one Orthanc HTTP thread waits at most that long, nothing else
in Orthanc waits on it, and a connector that is down or slow is answered as 503 with a JSON
body saying so (the panel shows it), never as an Orthanc error.
"""

import datetime
import html
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

import orthanc

CONNECTOR_TIMEOUT = 3  # seconds an Orthanc HTTP thread may wait for the connector
CONTEXT_PATH = "/api/internal/orthanc/studies/%s/context"
CASES_PATH = "/api/cases?sort=triage&limit=1000"  # most urgent first, then the oldest
ANSWER_PAGE = "/ui/cases/%s"  # the connector's answer page for a case
OPEN_STATUSES = ("OPEN", "IMAGES_PENDING", "READY", "IN_REVIEW")
EXPLORER_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explorer.js")



def connector_opener(ca_file=""):
    """The opener that reaches the connector. It is on loopback: never through an http_proxy
    variable. Over HTTPS (`TeleDerm.ConnectorCaFile` set: the connector's own certificate),
    that certificate is the trust anchor (a partial chain: no CA needed for a site's own
    certificate), and its host name is not checked: the plugin calls the listen address,
    which a certificate made for the site's name need not carry, and the pinned certificate
    already says who answers."""
    handlers = [urllib.request.ProxyHandler({})]
    if ca_file:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.load_verify_locations(cafile=ca_file)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


class _Problem(Exception):
    """The connector gave no usable answer: `status` and `error` are what our route answers."""

    def __init__(self, status, error, detail):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


class Seat:
    """The routes and the explorer extension, for one connector URL and token."""

    def __init__(self, connector_url, connector_token, opener):
        self.connector_url = connector_url
        self.connector_token = connector_token
        self.opener = opener

    def register(self):
        orthanc.RegisterRestCallback("/telederm/studies/([^/]+)", self.on_study)
        orthanc.RegisterRestCallback("/telederm/worklist", self.on_worklist)
        with open(EXPLORER_JS, encoding="utf-8") as f:
            orthanc.ExtendOrthancExplorer(f.read())

    # --- routes ---------------------------------------------------------------------------
    def on_study(self, output, uri, **request):
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        status, body = self.study_context(request["groups"][0])
        _send_json(output, status, body)

    def on_worklist(self, output, uri, **request):
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        try:
            cases = self._connector_get(CASES_PATH)
        except _Problem as problem:
            page = _page("Télé-expertise", '<p class="telederm-error">%s</p>'
                         % html.escape(problem.detail))
            _send_status(output, problem.status, page, "text/html; charset=utf-8")
            return
        rows = [self._row(case) for case in cases if case.get("status") in OPEN_STATUSES]
        output.AnswerBuffer(_page("Télé-expertise", _table(rows)).encode("utf-8"),
                            "text/html; charset=utf-8")

    # --- work -----------------------------------------------------------------------------
    def study_context(self, orthanc_id):
        """(HTTP status, JSON body) for the case of Orthanc study `orthanc_id`."""
        try:
            study = json.loads(orthanc.RestApiGet("/studies/" + orthanc_id))
        except (orthanc.OrthancException, ValueError):
            return 404, {"error": "unknown-study", "detail": "Orthanc has no study %s" % orthanc_id}
        study_uid = study.get("MainDicomTags", {}).get("StudyInstanceUID", "")
        try:
            context = self._connector_get(CONTEXT_PATH % urllib.parse.quote(study_uid, safe=""))
        except _Problem as problem:
            return problem.status, {"error": problem.error, "detail": problem.detail,
                                    "study_instance_uid": study_uid}
        context["orthanc_study_id"] = orthanc_id
        context["answer_url"] = self.connector_url + ANSWER_PAGE % urllib.parse.quote(
            context["accession"], safe="")
        return 200, context

    def _row(self, case):
        """One worklist line, with the case's study in Orthanc when it has images there."""
        study_id = None
        uid = case.get("study_instance_uid")
        if uid:
            try:
                found = json.loads(orthanc.RestApiPost("/tools/lookup", uid))
            except (orthanc.OrthancException, ValueError):
                found = []
            study_id = next((f["ID"] for f in found if f.get("Type") == "Study"), None)
        return case, study_id

    def _connector_get(self, path):
        if not self.connector_url:
            raise _Problem(503, "connector-not-configured",
                               "the TeleDerm connector is not configured "
                               "(TeleDerm.ConnectorUrl is empty)")
        headers = {"Accept": "application/json"}
        if self.connector_token:
            headers["Authorization"] = "Bearer " + self.connector_token
        request = urllib.request.Request(self.connector_url + path, headers=headers)
        try:
            with self.opener.open(request, timeout=CONNECTOR_TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise _Problem(404, "not-a-case",
                                   "this study is not a tele-expertise case") from None
            raise _Problem(502, "connector-error",
                               "the TeleDerm connector answered HTTP %d" % error.code) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise _Problem(503, "connector-unreachable",
                               "the TeleDerm connector is unreachable (%s)" % reason) from None


def _send_json(output, status, body):
    text = json.dumps(body, ensure_ascii=False)
    if status == 200:
        output.AnswerBuffer(text.encode("utf-8"), "application/json")
    else:
        _send_status(output, status, text, "application/json")


def _send_status(output, status, text, content_type):
    """An error answer with a body. orthanc-python 4.0 takes the body as a str (sent as UTF-8)
    and its size in bytes (newer releases take bytes alone)."""
    output.SetHttpHeader("Content-Type", content_type)
    output.SendHttpStatus(status, text, len(text.encode("utf-8")))


def _age(created_at, now=None):
    """'3 h', '2 d': how long a case has waited, from the connector's ISO UTC timestamp."""
    try:
        created = datetime.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return ""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    hours = max(0, int((now - created).total_seconds() // 3600))
    return "%d h" % hours if hours < 48 else "%d d" % (hours // 24)


def _table(rows):
    if not rows:
        return '<p class="telederm-empty">Aucune demande ouverte / no open request.</p>'
    lines = []
    for case, study_id in rows:
        triage = case.get("triage") or {}
        accession = html.escape(case.get("accession") or "")
        link = ('<a href="../app/explorer.html#study?uuid=%s">%s</a>'
                % (html.escape(study_id), accession) if study_id
                else '%s <small>(pas encore d’images / no images yet)</small>' % accession)
        cells = (html.escape(case.get("priority") or ""), html.escape(triage.get("level") or ""),
                 html.escape(case.get("status") or ""), _age(case.get("created_at")), link,
                 html.escape(case.get("question") or ""))
        lines.append("<tr>" + "".join("<td>%s</td>" % c for c in cells) + "</tr>")
    head = "".join("<th>%s</th>" % h for h in (
        "Priorité", "Triage", "Statut", "Attente", "Demande", "Question"))
    return ('<table class="telederm-worklist"><thead><tr>%s</tr></thead><tbody>%s</tbody>'
            '</table>' % (head, "".join(lines)))


def _page(title, body):
    return ("<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>%s</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
            ".telederm-error{color:#a00}</style></head><body><h1>%s</h1>"
            "<p><a href=\"../app/explorer.html\">Orthanc Explorer</a></p>%s</body></html>"
            % (html.escape(title), html.escape(title), body))
