"""MLLP peers standing in for the requester's EHR and the accounting system."""

from __future__ import annotations

import hl7 as pyhl7

from connector import demo


class RecordingPeer(demo.RecordingPeer):
    """The demo's recording peer (a real MLLP server answering AA), silent by default, whose
    messages tests read back parsed."""

    def parsed(self) -> list[pyhl7.Message]:
        return [pyhl7.parse(m) for m in self.messages]
