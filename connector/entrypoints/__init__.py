"""The channels: each turns what it received into a command for a step of the flow
(`connector/workflow/`), opens the unit of work and renders the outcome in its own terms.

- `hl7_intake` (MLLP listener's handler: accept, store, ACK) and `hl7_routes` (MSH-9 -> step);
- `dicom_scp` (the C-STORE SCP's receiver: persist, then a DICOM status);
- `watch_folder` (files dropped in a folder);
- `api/` (the HTTP API, one router per resource; problem+json errors);
- `cli` (the `telederm` command).
A new channel goes here; it calls existing steps and holds no logic of its own.
"""
