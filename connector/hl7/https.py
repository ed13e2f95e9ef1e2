"""HL7 over HTTPS, for sites that allow outbound connections only.

One POST per message (body: the message in the charset its MSH-18 declares), an API key in a
header, a 60 s timeout. A 2xx answer means delivered; when its body is an HL7 ACK, the ACK is
returned so the caller checks MSA-1/MSA-2 as for MLLP. Any other status, a timeout or a
network error is a retryable DeliveryError: the outbox tries again later, in order.
The peer's certificate is checked against `ca_file` (else the system's CAs); `cert_file` and
`key_file` present ours when the peer asks for mutual TLS.
"""

from __future__ import annotations

import httpx

from .ack import AckResult, read_ack
from .errors import DeliveryError, Hl7Error
from .parse import encode
from .tls import client_context

CONTENT_TYPE = "x-application/hl7-v2+er7"


def post_message(url: str, message: str, *, api_key: str = "", header: str = "X-API-Key",
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, timeout: float = 60) -> AckResult | None:
    headers = {"Content-Type": CONTENT_TYPE}
    if api_key:
        headers[header] = api_key
    try:
        response = httpx.post(url, content=encode(message), headers=headers, timeout=timeout,
                              verify=client_context(ca_file, cert_file, key_file))
    except httpx.TimeoutException:
        raise DeliveryError(f"no answer within {timeout:g} s", retryable=True,
                            code="hl7-ack-timeout") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"HTTPS delivery failed: {type(exc).__name__}", retryable=True,
                            code="hl7-connection-refused") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"the peer answered HTTP {response.status_code}", retryable=True,
                            code="hl7-http-status")
    if b"MSA" not in response.content:
        return None
    try:
        return read_ack(response.content)
    except Hl7Error as exc:
        raise DeliveryError(f"answer is not a usable ACK: {exc.text}", retryable=True,
                            code="hl7-bad-ack") from None
