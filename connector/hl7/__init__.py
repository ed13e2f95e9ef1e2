"""HL7 v2 over MLLP: framing, decoding, ACKs, the order/result/charge mappers, client and listener.

Text is decoded only once MSH-18 is known (`parse.decode`), every problem is an `Hl7Error` that
`ack.py` renders into MSA/ERR, and the listener never runs business logic itself: it hands each
framed message to one synchronous handler and frames whatever ACK bytes come back.
"""
