"""What runs in the background: the server that starts every listener (`server`), the outbox
worker (`worker`), the Orthanc changes catch-up (`catch_up`) and the storage-mode HL7 applier
(`hl7_applier`)."""
