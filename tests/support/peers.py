"""MLLP peers standing in for the requester's EHR and the accounting system."""

from __future__ import annotations

import hl7 as pyhl7

from connector import demo


class RecordingPeer(demo.RecordingPeer):
    """The demo's recording peer (a real MLLP server answering AA), silent by default, whose
    messages tests read back parsed."""

    def parsed(self) -> list[pyhl7.Message]:
        return [pyhl7.parse(m) for m in self.messages]


class IntakePeer(demo.RecordingPeer):
    """The connector's own HL7 intake (`hl7_intake.handle` on `services`) behind a real MLLP
    socket, for what a command sends to the connector (e.g. `telederm hl7 send`)."""

    def __init__(self, services):
        super().__init__("telederm")
        self.services = services

    def _handle(self, raw: bytes, peer: str) -> bytes:
        from connector.entrypoints import hl7_intake
        return hl7_intake.handle(self.services, raw, peer)
