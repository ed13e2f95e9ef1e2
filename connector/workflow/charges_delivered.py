"""What the accounting feed answered about a batch of charges, applied by the outbox worker in
the unit of work that closes the outbox item (hooks keyed by outbox kind, see
`runtime/worker.py`).

- An HL7 message delivered with AA/CA: the lines of the batch with this MSH-10 become
  `acknowledged` (also after an operator re-queued a refused batch that is then accepted).
- An HL7 message the peer refused with AE/CE (not retryable, the item goes to dead letters):
  its lines become `refused`, with the refusal (MSA-1 and ERR codes/locations; the peer's own
  texts are not stored, they may quote patient data). They are then out of the money totals.
- Any other message (an ORU...) has no charge lines: nothing changes.
- A CSV file dropped in a folder gets no answer: its lines stay `sent` (handed to the feed).
"""

from __future__ import annotations

import json

from ..hl7.errors import DeliveryError
from ..store.outbox import Item
from ..store.uow import UnitOfWork


def on_delivered(uow: UnitOfWork, item: Item) -> int:
    """The peer accepted the message: its charge lines are acknowledged."""
    return uow.charges.mark(_control_id(item), "acknowledged", only=("sent", "refused"))


def on_dead(uow: UnitOfWork, item: Item, error: BaseException) -> int:
    """The item went to dead letters: its lines are refused when the peer answered AE."""
    if not (isinstance(error, DeliveryError) and error.ack is not None and not error.retryable):
        return 0  # never answered (timeouts, refused connections): still `sent`, retry later
    return uow.charges.mark(_control_id(item), "refused",
                            reason=f"feed refused it: {error.text}", only=("sent", "acknowledged"))


def _control_id(item: Item) -> str:
    return json.loads(item.payload)["control_id"]
