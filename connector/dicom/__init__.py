"""DICOM adapters: turn photos and reports into valid DICOM objects.

Modules: `jpeg` (marker walk over JPEG bytes), `uids` (deterministic UIDs), `sites` (pinned
CID 4029 body sites), `wrap` (VL Photographic Image, XC), `pdf` (Encapsulated PDF, DOC),
`common` (Patient/Study modules shared by both). Import the module you need; nothing is
re-exported here so that importing one does not pull in the others.
"""
