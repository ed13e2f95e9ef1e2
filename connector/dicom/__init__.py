"""DICOM adapters: turn photos and reports into valid DICOM objects, and take them in.

- `wrap`        an image as a VL Photographic Image (XC): the entry point for every channel
- `images`      the bytes a requester sent -> the one frame a DICOM photo carries
- `jpeg`        marker walk over JPEG bytes (read and clean without decoding a pixel)
- `orientation` EXIF orientation: the pixels upright before they go into DICOM
- `limits`      size and pixel limits, checked before a pixel is decoded
- `quality`     the quality gate: blurred, badly exposed or tiny photos are flagged
- `dermoscopy`  a wrapped photo as a Dermoscopic Photography Image (DMS)
- `pdf`         the report as Encapsulated PDF (DOC) in the case's study
- `common`      Patient/Study modules, file meta and character set shared by every object
- `sites`       pinned CID 4029 body sites and laterality modifiers
- `uids`        deterministic UIDs (study, series, image, report)
- `worklist`    modality worklist entries as files for Orthanc's worklist plugin
- `scp`         C-STORE SCP for capture devices (pynetdicom)

Import the module you need; nothing is re-exported here so that importing one does not pull in
the others.
"""
