"""The flow of a case, one module per step, each a `handle(command, uow)` over a unit of work
(`connector/store/uow.py`): the command says what a channel asks (`commands.py`), the unit of
work holds the transaction, the repositories and the moment. Steps wire the adapters (hl7,
dicom, archive, billing, reports) and never see SQL or a connection.

In flow order:
1. `open_case` — an order opens a case (accession, Study UID, worklist entries);
   `record_teleconsultation` — an act reported as done is opened, completed and billed at once;
   `change_order` (ORC-1 XO), `cancel_order` (ORC-1 CA).
   `assign_case` — the care network: pool, specialist and deadline of a new case (`route`),
   a specialist taking or handing back a case; `escalate_case` — its timers: the reminder
   before the deadline, the escalation to the fallback pool after the grace.
2. `attach_image` — a photo or dermoscopy image becomes a DICOM object and an archive job
   (every channel); `receive_object` — a DICOM object from a device joins its case;
   `publish_worklist` — the worklist entries a capture device reads (outbox effect).
   `refuse_order` — the dermatologist declines, an operator cancels.
3. `mark_ready` — the archive holds the stable study: the case is READY.
4. `record_report` — the answer: signed PDF, Encapsulated PDF, report to the requester, charges;
   `receive_report` — the same from a reporting system (ORU / MDM).
   `request_follow_up` — the in-person visit the conduct calls for, asked of each
   scheduling destination (SIU^S12 / ORM / OMG), acknowledged or refused by its answer.
5. `send_report` — the report to each requester destination (ORU^R01 or MDM);
   `forward_study` — the study (images, then the report's PDF) to each hospital PACS by
   C-STORE, when the case is ready or answered (`[[dicom.forward]]`).
6. `post_charges` — billing lines and DFT^P03 / CSV batches; `charges_delivered` — what the
   accounting feed answered.
7. `withdraw_report` — a final answer withdrawn (OBX-11 D, credits).
8. `update_patient`, `merge_patients`, `change_identifier`, `link_patients` — identity
   messages (ADT A08/A31, A40, A47, A24/A37); `domain/identity.py` says which are refused as
   conflicts.
Shared by several steps: `notify_status` (order status to the requester), `outbound` (queueing
an HL7 message). Beside the flow: `record_read` — a case shown to someone, `record_listing` — a list of
cases shown (audit trail).

Channels that build the commands are in `connector/entrypoints/`; what runs in the background
(the outbox worker, the Orthanc changes catch-up, the storage-mode applier, the server) in
`connector/runtime/`; the composition root is `connector/bootstrap.py`.
"""
