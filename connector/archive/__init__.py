"""Orthanc archive adapter: a REST client (`client`), a locally managed Orthanc (`managed`) and
the errors that tell a caller whether a retry can help (`errors`)."""
