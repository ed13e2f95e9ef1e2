"""Versioned migrations, applied in order by `db.migrate()`; each is `upgrade(connection)`.

A migration is never edited once released: later changes add a new numbered module, and
`schema.py` always shows the shape they lead to.
"""

from . import (m0001_initial, m0002_image_quality, m0003_billing,
               m0004_identity_questionnaire, m0005_patient_identity,
               m0006_inbox_state, m0007_users, m0008_case_procedure, m0009_forwarded,
               m0010_identifier_forms, m0011_routing, m0012_api_tokens,
               m0013_identifier_index, m0014_follow_ups,
               m0015_identifiers_only_in_index, m0016_leases, m0017_scopes)

MIGRATIONS = [
    (1, "initial", m0001_initial.upgrade),
    (2, "image quality", m0002_image_quality.upgrade),
    (3, "billing wiring", m0003_billing.upgrade),
    (4, "identity and questionnaire", m0004_identity_questionnaire.upgrade),
    (5, "patient identity", m0005_patient_identity.upgrade),
    (6, "inbox processing state", m0006_inbox_state.upgrade),
    (7, "users and sessions", m0007_users.upgrade),
    (8, "requested procedure", m0008_case_procedure.upgrade),
    (9, "objects forwarded to a PACS", m0009_forwarded.upgrade),
    (10, "identifier forms", m0010_identifier_forms.upgrade),
    (11, "care network", m0011_routing.upgrade),
    (12, "api tokens", m0012_api_tokens.upgrade),
    (13, "identifier index", m0013_identifier_index.upgrade),
    (14, "follow-up requests", m0014_follow_ups.upgrade),
    (15, "identifiers only in the index", m0015_identifiers_only_in_index.upgrade),
    (16, "leases", m0016_leases.upgrade),
    (17, "requesting service and scopes", m0017_scopes.upgrade),
]
