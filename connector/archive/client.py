"""The connector's view of an Orthanc archive: store instances, find studies, link to a viewer.

Built on orthanc-api-client's HTTP layer (auth, connection retries, error translation), calling
the REST routes that exist in Orthanc 1.10 directly: several of the library's helpers use
`/tools/find` options that only newer Orthanc versions understand, and none take a timeout.
Every failure is turned into an `ArchiveError` subclass that tells the outbox whether a retry
can help (`ArchiveUnavailable`) or not (`ArchiveRejected`).
"""

from __future__ import annotations

import hashlib

import requests
from orthanc_api_client import OrthancApiClient
from orthanc_api_client import exceptions as api_errors

from connector.archive.errors import ArchiveRejected, ArchiveUnavailable
from connector.domain.errors import NotFound

# Read per instance by `study_instances`; TransferSyntaxUID comes from Orthanc's metadata.
INSTANCE_TAGS = ("SOPClassUID", "SOPInstanceUID", "AccessionNumber", "Modality")
# The Patient module tags a patient update (ADT) rewrites on stored instances, and the sequence
# of the patient's other identifiers (items as Orthanc's simplified tags give them).
PATIENT_TAGS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex")
OTHER_IDS = "OtherPatientIDsSequence"
# What a patient update keeps as it is (the modification is otherwise free to make new UIDs).
KEPT_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class ArchiveClient:
    """Talks to one Orthanc over its REST API with basic authentication."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 30):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api = OrthancApiClient(self.url, user=username, pwd=password)

    def is_alive(self) -> bool:
        """True if Orthanc answers `/system` with our credentials."""
        try:
            self.system()
        except (ArchiveUnavailable, ArchiveRejected):
            return False
        return True

    def system(self) -> dict:
        """Orthanc's `/system` (Version, Name, ...); an ArchiveError saying why when it cannot
        be had (unreachable, credentials refused)."""
        return self._request("get", "system").json()

    def plugins(self) -> list[str]:
        """The ids of the plugins Orthanc has loaded (`/plugins`: "python", "web-viewer",
        "dicom-web", "worklists", ...)."""
        return list(self._request("get", "plugins").json())

    def store(self, dicom_bytes: bytes) -> str:
        """Store one DICOM Part-10 file; return its Orthanc instance id.

        Idempotent: Orthanc keys instances on their UIDs, so storing the same SOP Instance
        again answers `AlreadyStored` with the same id and keeps one copy.
        """
        response = self._request(
            "post", "instances", data=dicom_bytes, headers={"Content-Type": "application/dicom"}
        )
        return response.json()["ID"]

    def find_study(self, study_uid: str) -> str | None:
        """Orthanc id of the study with this StudyInstanceUID, or None if the archive lacks it."""
        matches = self._request("post", "tools/lookup", data=study_uid).json()
        return next((m["ID"] for m in matches if m["Type"] == "Study"), None)

    def study_uid(self, orthanc_study_id: str) -> str:
        """StudyInstanceUID of a study known by its Orthanc id (as sent by the plugin)."""
        study = self._request("get", f"studies/{orthanc_study_id}").json()
        return study["MainDicomTags"]["StudyInstanceUID"]

    def study_instances(self, study_uid: str) -> list[dict]:
        """Each stored instance of a study: its UIDs, transfer syntax, accession and modality."""
        study_id = self._require_study(study_uid)
        instances = []
        for instance in self._request("get", f"studies/{study_id}/instances").json():
            tags = self._request("get", f"instances/{instance['ID']}/tags", params={"simplify": ""}).json()
            syntax = self._request("get", f"instances/{instance['ID']}/metadata/TransferSyntax").text
            entry = {name: tags.get(name) for name in INSTANCE_TAGS}
            entry["TransferSyntaxUID"] = syntax.strip()
            entry["orthanc_id"] = instance["ID"]
            instances.append(entry)
        return sorted(instances, key=lambda entry: entry["SOPInstanceUID"] or "")

    def changes(self, since: int, limit: int = 100) -> tuple[list[dict], int, bool]:
        """One page of Orthanc's Changes Log after `since`: (changes, last seq, done)."""
        page = self._request("get", "changes", params={"since": since, "limit": limit}).json()
        return page["Changes"], page["Last"], page["Done"]

    def instance_file(self, orthanc_id: str) -> bytes:
        """The stored Part-10 file, byte for byte (what a forward to a PACS sends)."""
        return self._request("get", f"instances/{orthanc_id}/file").content

    def study_patient_tags(self, study_uid: str) -> list[dict] | None:
        """The patient of each stored instance of a study, as the instance itself says:
        `orthanc_id`, `SOPInstanceUID`, each of `PATIENT_TAGS` ("" when absent) and `OTHER_IDS`
        (a list of items, empty when absent); None when the archive does not hold the study."""
        study_id = self.find_study(study_uid)
        if study_id is None:
            return None
        found = []
        for instance in self._request("get", f"studies/{study_id}/instances").json():
            tags = self._request("get", f"instances/{instance['ID']}/tags",
                                 params={"simplify": ""}).json()
            entry = {name: str(tags.get(name) or "").strip() for name in PATIENT_TAGS}
            entry[OTHER_IDS] = tags.get(OTHER_IDS) or []
            entry["SOPInstanceUID"] = tags.get("SOPInstanceUID", "")
            entry["orthanc_id"] = instance["ID"]
            found.append(entry)
        return sorted(found, key=lambda entry: entry["SOPInstanceUID"])

    def modified_instance(self, orthanc_id: str, patient: dict) -> bytes:
        """The stored instance with its patient tags replaced, as a Part-10 file (Orthanc's
        `POST /instances/{id}/modify`, which stores nothing). Every UID is kept: Study, Series
        and SOP Instance UIDs identify our objects (images, reports, their references). An
        empty `IssuerOfPatientID` or `OTHER_IDS` removes the tag. `Force` is required to keep
        the UIDs and to change PatientID."""
        emptied = [k for k in ("IssuerOfPatientID", OTHER_IDS) if k in patient and not patient[k]]
        replace = {k: v for k, v in patient.items() if k not in emptied}
        body = {"Replace": replace, "Keep": list(KEPT_UIDS), "Force": True}
        if emptied:
            body["Remove"] = emptied
        return self._request("post", f"instances/{orthanc_id}/modify", json=body).content

    def delete_instance(self, orthanc_id: str) -> bool:
        """Delete one instance; False when it was already gone."""
        try:
            self._request("delete", f"instances/{orthanc_id}")
        except NotFound:
            return False
        return True

    def reconstruct_study(self, study_uid: str) -> None:
        """Have Orthanc re-read the study's main tags (patient and study level) from its files:
        a resource keeps the tags of its first instance until then (`/studies/{id}/reconstruct`,
        Orthanc >= 1.6)."""
        study_id = self.find_study(study_uid)
        if study_id is not None:
            self._request("post", f"studies/{study_id}/reconstruct", json={})

    def rendered(self, sop_uid: str, *, height: int) -> bytes:
        """One stored instance as Orthanc draws it (`/instances/{id}/rendered`: orientation,
        colour and windowing applied), a PNG `height` pixels high; NotFound when the archive
        does not hold it."""
        matches = self._request("post", "tools/lookup", data=sop_uid).json()
        instance = next((m["ID"] for m in matches if m["Type"] == "Instance"), None)
        if instance is None:
            raise NotFound(f"instance {sop_uid} is not in the archive", where=self.url)
        return self._request("get", f"instances/{instance}/rendered",
                             params={"height": height}, headers={"Accept": "image/png"}).content

    def explorer_url(self, study_uid: str) -> str:
        """Link that opens the study in Orthanc Explorer."""
        return f"{self.url}/app/explorer.html#study?uuid={self._require_study(study_uid)}"

    def _require_study(self, study_uid: str) -> str:
        study_id = self.find_study(study_uid)
        if study_id is None:
            raise NotFound(f"study {study_uid} is not in the archive", where=self.url)
        return study_id

    def _request(self, method: str, endpoint: str, **kwargs) -> requests.Response:
        """One REST call, with every failure mapped to retryable or not."""
        where = f"{self.url}/{endpoint}"
        try:
            response = getattr(self._api, method)(endpoint, timeout=self.timeout, **kwargs)
        except (api_errors.ConnectionError, api_errors.TimeoutError) as error:
            raise ArchiveUnavailable(
                "Orthanc is unreachable", where=where, hint="start Orthanc or check orthanc.url"
            ) from error
        except api_errors.NotAuthorized as error:
            raise ArchiveUnavailable(
                "Orthanc refused our credentials",
                where=where,
                hint="check orthanc.username and orthanc.password",
            ) from error
        except api_errors.ResourceNotFound as error:
            raise NotFound("not found in the archive", where=where) from error
        except api_errors.HttpError as error:
            status = error.http_status_code
            if status == 409 or status >= 500:  # concurrent store of the same file, disk full, busy
                raise ArchiveUnavailable(
                    f"Orthanc failed with HTTP {status}: {error.msg or 'no details'}", where=where, hint="retry later"
                ) from error
            raise ArchiveRejected(
                f"Orthanc refused the request with HTTP {status}: {error.msg or 'no details'}",
                where=where,
                hint="the content is not acceptable DICOM; fix it before sending again",
            ) from error
        # orthanc-api-client swallows request errors it does not translate and returns None.
        if response is None:
            raise ArchiveUnavailable("Orthanc connection failed", where=where, hint="retry later")
        return response


def orthanc_study_id(patient_id: str, study_uid: str) -> str:
    """Orthanc's identifier of a study, computed as Orthanc does (SHA-1 of "PatientID|StudyUID"
    in five groups of eight hex digits), so a link can be made before the study is stored."""
    digest = hashlib.sha1(f"{patient_id}|{study_uid}".encode("utf-8")).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


def viewer_url(base_url: str, patient_id: str, study_uid: str) -> str:
    """Orthanc Explorer link to a study, whether or not it is stored yet."""
    return f"{base_url.rstrip('/')}/app/explorer.html#study?uuid={orthanc_study_id(patient_id, study_uid)}"
