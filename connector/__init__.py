"""TeleDerm Connector: tele-dermatology between HL7 v2 systems, an Orthanc archive and billing."""

__version__ = "0.1.0"
