"""IHE ATNA: the audit trail's events as DICOM PS3.15 audit messages (`message.py`), sent over
syslog to an Audit Record Repository (`syslog.py`). Imports nothing else of the connector."""
