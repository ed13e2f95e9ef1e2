"""Orthanc archive adapter: a REST client (`client`) and a locally managed Orthanc (`managed`)."""
