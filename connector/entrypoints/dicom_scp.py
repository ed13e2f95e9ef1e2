"""The C-STORE SCP's receiver (connector/dicom/scp.py): each object a device sends becomes a
`ReceiveObject` for the `receive_object` step, and the outcome a DICOM status.

It runs on the association's thread, so the peer waits while it runs: the step only touches
the data folder and the database, never the archive. Success is answered only once the unit of
work has committed; a store that cannot persist now is answered "out of resources" (the device
retries later), an object no case can take "cannot understand" (or "data set does not match"
when it contradicts the request), and that refusal is audited. The peer may be a stranger
(DICOM has no login): a refusal that depends on which cases exist says only that no case takes
the object, never that an accession exists or whose it is; the audit row keeps the reason.
"""

from __future__ import annotations

import logging

from ..bootstrap import Services
from ..dicom.scp import (CANNOT_UNDERSTAND, DATASET_MISMATCH, OUT_OF_RESOURCES, SUCCESS, Answer,
                         Received)
from ..domain.errors import ConnectorError, StoreUnavailable
from ..workflow import receive_object
from ..workflow.commands import ReceiveObject

log = logging.getLogger("connector.dicom.inbound")

# Refusals whose text would tell which cases exist (see the module docstring).
_CASE_MATCHING = frozenset({"unmatched-object", "patient-mismatch", "duplicate-instance"})
UNMATCHED_COMMENT = "no open case takes this object; pick the case from the worklist"


def answer(services: Services, received: Received) -> Answer:
    """Persist the object and answer (success only once durable)."""
    actor = f"dicom:{received.calling_ae or '-'}@{received.peer}"[:100]
    cmd = ReceiveObject(received.data, actor,
                        expect=(received.sop_class_uid, received.sop_instance_uid))
    try:
        with services.unit() as uow:
            receive_object.handle(cmd, uow)
        return Answer(SUCCESS)
    except StoreUnavailable as err:
        log.warning("C-STORE %s not persisted: %s", received.sop_instance_uid, err.text)
        return Answer(OUT_OF_RESOURCES, "cannot persist now; retry later")
    except ConnectorError as err:
        status = DATASET_MISMATCH if err.code == "dataset-mismatch" else CANNOT_UNDERSTAND
        receive_object.refused(services, actor=actor, reason=err,
                               sop_instance_uid=received.sop_instance_uid, via="dicom")
        return Answer(status, UNMATCHED_COMMENT if err.code in _CASE_MATCHING else err.text)
