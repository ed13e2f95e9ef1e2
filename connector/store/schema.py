"""SQLAlchemy Core tables: the current shape of the database.

Migrations in `migrations/` bring an existing database to this shape; `db.migrate()` runs them.
"""

from sqlalchemy import (Boolean, Column, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Table, Text, UniqueConstraint, true)

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("applied_at", String(32), nullable=False),
)

counters = Table(
    "counters", metadata,
    Column("name", String(50), primary_key=True),
    Column("value", Integer, nullable=False),
)

patients = Table(
    "patients", metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("issuer", String(64), nullable=False, default=""),
    Column("family", String(100), nullable=False),
    Column("given", String(100), nullable=False, default=""),
    Column("birth_date", String(8), nullable=False, default=""),
    Column("sex", String(1), nullable=False, default=""),
    # French identity (0004): the INS whatever its status, its OID, the identity status and the
    # other PID-32 codes (space-separated); every identifier is in `patient_identifiers` (0015)
    Column("ins", String(15), nullable=False, default=""),
    Column("ins_oid", String(64), nullable=False, default=""),
    Column("identity_status", String(5), nullable=False, default=""),
    Column("identity_flags", String(200), nullable=False, default=""),
    UniqueConstraint("patient_id", "issuer"),
)

# The identifier index (0012): every identifier a patient is known by (the identifier, the
# other PID-3 repetitions, the INS whatever its status), each belonging to one patient, with how
# the sender wrote it; the one source of a patient's identifiers (0015). Inactive: it finds the
# patient but is no longer theirs to send (a merged record's identifier).
patient_identifiers = Table(
    "patient_identifiers", metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False),
    Column("identifier", String(64), nullable=False),
    Column("authority", String(64), nullable=False, default=""),  # OID, else namespace id
    Column("namespace", String(64), nullable=False, default=""),  # CX-4.1 beside an OID
    Column("type", String(10), nullable=False, default=""),       # CX-5 (PI, INS, ...)
    Column("active", Boolean, nullable=False, default=True, server_default=true()),
    UniqueConstraint("identifier", "authority"),
)
Index("ix_patient_identifiers_patient", patient_identifiers.c.patient_pk)

# Patient records the identity server says are one person without merging them (ADT^A24,
# undone by A37; 0015): each case stays on its record, lookups find the linked group. One row per
# pair, the lower record first.
patient_links = Table(
    "patient_links", metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False),
    Column("linked_pk", Integer, ForeignKey("patients.id"), nullable=False),
    UniqueConstraint("patient_pk", "linked_pk"),
)
Index("ix_patient_links_linked", patient_links.c.linked_pk)

# Identity events the identity-vigilance team must see (0012): `unknown-patient` (an ADT about
# a patient no case names: AA, nothing changed) and `conflict` (a message refused because its
# identity contradicts a known patient). No patient data: the message, the rule, the field.
identity_incidents = Table(
    "identity_incidents", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", String(32), nullable=False),
    Column("kind", String(20), nullable=False),        # unknown-patient | conflict
    Column("message_type", String(20), nullable=False),  # ADT^A08, ORM^O01 ...
    Column("sender", String(200), nullable=False),
    Column("control_id", String(64), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("location", String(40), nullable=False, default=""),  # ERR-2 of a conflict
)
Index("ix_identity_incidents_kind", identity_incidents.c.kind)

cases = Table(
    "cases", metadata,
    Column("accession", String(16), primary_key=True),
    Column("sender", String(200), nullable=False),
    Column("placer_order_number", String(22), nullable=False),
    Column("study_uid", String(64), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False),
    Column("requester_id", String(64), nullable=False),
    Column("requester_family", String(100), nullable=False),
    Column("requester_given", String(100), nullable=False, default=""),
    Column("requester_authority", String(64), nullable=False, default=""),
    Column("question", Text, nullable=False, default=""),
    Column("ordered_at", String(26), nullable=False, default=""),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    # PV1-2 = I on the order: hospitalised at the requesting facility (billing exclusion)
    Column("patient_hospitalised", Boolean, nullable=False, default=False),
    # 0004: requester's identifier type and RPPS, requesting facility, the structured request
    # (questionnaire answers, JSON), the consent (JSON, "" when not recorded) and the triage
    Column("requester_id_type", String(10), nullable=False, default=""),
    Column("requester_rpps", String(11), nullable=False, default=""),
    Column("facility_finess", String(9), nullable=False, default=""),
    Column("facility_name", String(100), nullable=False, default=""),
    Column("facility_kind", String(5), nullable=False, default=""),
    Column("questionnaire", Text, nullable=False, default="[]"),
    Column("consent", Text, nullable=False, default=""),
    Column("triage_score", Integer, nullable=False, default=0),
    Column("triage_level", String(8), nullable=False, default=""),
    # 0007: the requested procedure's label (OBR-4.2), the study's StudyDescription
    Column("procedure", String(64), nullable=False, default=""),
    # 0011, the care network (connector/routing.py): the pool, the member it is assigned to
    # (IdNatPS, "" while it waits in the pool), the deadline, when it was first answered
    # (statistics: answered in time) and how often it escalated to a fallback pool
    Column("pool", String(40), nullable=False, default=""),
    Column("assigned_to", String(64), nullable=False, default=""),
    Column("due_at", String(32), nullable=False, default=""),
    Column("answered_at", String(32), nullable=False, default=""),
    Column("escalations", Integer, nullable=False, default=0),
    # 0015: the requesting service (ORC-17.1, else PV1-3.1), which requesters' scopes name
    Column("service", String(40), nullable=False, default=""),
    UniqueConstraint("sender", "placer_order_number"),
)
Index("ix_cases_status", cases.c.status)
Index("ix_cases_triage", cases.c.triage_score)
Index("ix_cases_patient", cases.c.patient_pk)
Index("ix_cases_assignee", cases.c.assigned_to, cases.c.status)
Index("ix_cases_due", cases.c.due_at)

images = Table(
    "images", metadata,
    Column("id", Integer, primary_key=True),
    Column("accession", String(16), ForeignKey("cases.accession"), nullable=False),
    Column("sop_uid", String(64), nullable=False, unique=True),
    Column("series_uid", String(64), nullable=False),
    Column("sop_class_uid", String(64), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("source_sha256", String(64), nullable=False),
    Column("path", Text, nullable=False),  # the DICOM file in the data folder, until archived
    Column("site_code", String(32), nullable=False, default=""),
    Column("laterality", String(1), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", String(32), nullable=False),
    Column("archived_at", String(32)),
    Column("quality", Text, nullable=False, default="{}"),  # quality gate: flags + measures
)

reports = Table(
    "reports", metadata,
    Column("id", Integer, primary_key=True),
    Column("accession", String(16), ForeignKey("cases.accession"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(1), nullable=False),
    Column("text", Text, nullable=False),
    Column("conduct", String(40), nullable=False),
    Column("specialist_id", String(64), nullable=False),
    Column("specialist_family", String(100), nullable=False),
    Column("specialist_given", String(100), nullable=False, default=""),
    Column("specialist_authority", String(64), nullable=False, default=""),  # m0007
    Column("specialist_id_type", String(10), nullable=False, default=""),
    Column("signed_at", String(14), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("sop_uid", String(64), nullable=False),
    Column("pdf", LargeBinary, nullable=False),
    UniqueConstraint("accession", "version"),
)

# One row per line of an act: a charge (CG), a credit (CD) or a line that may not be billed
# (status not_billable, type "", with the reason). See connector/store/charges.py.
charges = Table(
    "charges", metadata,
    Column("id", Integer, primary_key=True),
    Column("accession", String(16), ForeignKey("cases.accession"), nullable=False),
    Column("transaction_id", String(64), nullable=False, unique=True),  # FT1-2
    Column("code", String(10), nullable=False),
    Column("role", String(10), nullable=False),
    Column("type", String(2), nullable=False),  # CG | CD | "" (not billable)
    Column("amount_cents", Integer, nullable=False),
    Column("act_date", String(8), nullable=False),
    Column("performed_by", String(64), nullable=False),
    Column("ordered_by", String(64), nullable=False, default=""),
    Column("message_control_id", String(40), nullable=False),  # the batch (DFT MSH-10), or ""
    Column("created_at", String(32), nullable=False),
    # sent | acknowledged | refused | not_billable
    Column("status", String(14), nullable=False, default="sent"),
    Column("reason", Text, nullable=False, default=""),
    Column("facility", String(40), nullable=False, default=""),
    Column("kind", String(20), nullable=False, default="teleexpertise"),
    Column("level", Integer),
    Column("billing_round", Integer, nullable=False, default=0),
    Column("patient_id", String(64), nullable=False, default=""),
    Column("credit_of", String(64)),  # the FT1-2 a CD reverses
    Column("performed_by_name", String(200), nullable=False, default=""),  # FAMILY^Given
    Column("performed_by_authority", String(64), nullable=False, default=""),
    Column("performed_by_id_type", String(10), nullable=False, default=""),  # m0007
)
Index("ix_charges_control_id", charges.c.message_control_id)

inbox = Table(
    "inbox", metadata,
    Column("id", Integer, primary_key=True),
    Column("sender", String(200), nullable=False),
    Column("control_id", String(64), nullable=False),
    Column("message_type", String(20), nullable=False, default=""),
    Column("received_at", String(32), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("ack", LargeBinary, nullable=False),
    Column("ack_code", String(2), nullable=False),
    Column("accession", String(16)),
    # pending (acknowledged once stored, not processed yet) | done | failed (see `outcome`)
    Column("state", String(10), nullable=False, default="done"),
    Column("outcome", Text, nullable=False, default=""),
    UniqueConstraint("sender", "control_id"),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(30), nullable=False),          # archive.store | hl7.send
    Column("destination", String(50), nullable=False),   # 'archive' or a destination name
    Column("key", String(120), nullable=False, unique=True),  # idempotency key
    Column("accession", String(16)),
    Column("payload", LargeBinary, nullable=False),
    Column("status", String(10), nullable=False),         # pending | done | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", String(32), nullable=False),
    Column("lease_until", String(32)),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", String(32), nullable=False),
    Column("done_at", String(32)),
)
Index("ix_outbox_due", outbox.c.status, outbox.c.next_attempt_at)

# One row per object a hospital PACS acknowledged ([[dicom.forward]]): a retry after a partial
# send offers only the others, and nothing is sent twice (connector/store/forwarded.py).
forwarded = Table(
    "forwarded", metadata,
    Column("id", Integer, primary_key=True),
    Column("destination", String(50), nullable=False),   # the [[dicom.forward]] name
    Column("sop_uid", String(64), nullable=False),
    Column("accession", String(16), nullable=False),
    Column("sop_class_uid", String(64), nullable=False),
    Column("transfer_syntax_uid", String(64), nullable=False),
    Column("status", Integer, nullable=False),            # the C-STORE status (0, or a warning)
    Column("at", String(32), nullable=False),
    UniqueConstraint("destination", "sop_uid"),
)
Index("ix_forwarded_case", forwarded.c.destination, forwarded.c.accession)

# The in-person follow-up a report's conduct calls for, one row per scheduling destination:
# requested when queued, then acknowledged or refused by what that system answered.
follow_ups = Table(
    "follow_ups", metadata,
    Column("id", Integer, primary_key=True),
    Column("accession", String(16), nullable=False),
    Column("version", Integer, nullable=False),             # the report version that asked
    Column("destination", String(50), nullable=False),      # the [[destinations]] name
    Column("control_id", String(50), nullable=False),       # MSH-10 of the message sent
    Column("message_type", String(10), nullable=False),     # SIU^S12, ORM^O01, OMG^O19
    Column("urgency", String(10), nullable=False),          # routine | urgent
    Column("status", String(12), nullable=False),           # requested|acknowledged|refused
    Column("reason", String(200), nullable=False, default=""),  # a refusal's codes
    Column("requested_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    UniqueConstraint("destination", "control_id"),
)
Index("ix_follow_ups_case", follow_ups.c.accession)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", String(32), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(50), nullable=False),
    Column("accession", String(16)),
    Column("detail", Text, nullable=False, default="{}"),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# People who log in to the /ui/ pages (0007). `name` is FAMILY^GIVEN; `practitioner_id` the
# IdNatPS (RPPS-based) a specialist signs with; `password` is the scrypt record of
# `connector/entrypoints/ui/passwords.py` (parameters, salt and hash together).
users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("login", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(12), nullable=False),  # requester | specialist | admin
    Column("practitioner_id", String(64), nullable=False, default=""),
    Column("password", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", String(32), nullable=False),
    # 0015: FACILITY/SERVICE scopes of a requester, space-separated ("" or "*": every case)
    Column("scopes", Text, nullable=False, default=""),
)

# Logged-in browsers (0007): the SHA-256 of the cookie's random id (a copy of the database
# opens no session), the CSRF token its forms carry, and when it ends.
sessions = Table(
    "sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
)
Index("ix_sessions_expiry", sessions.c.expires_at)

# API tokens made by `telederm tokens create` (0012), beside the config's: only the SHA-256 of
# the secret is kept (a random 256-bit token needs no slow hash, and the digest is the lookup
# key), with its role, the IdNatPS a specialist token signs with, expiry and revocation.
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(12), nullable=False),
    Column("practitioner_id", String(64), nullable=False, default=""),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("revoked_at", String(32), nullable=False, default=""),
    Column("scopes", Text, nullable=False, default=""),  # 0015, as users.scopes
)

# Timers of the care network (0008): a reminder before a case's deadline, its escalation
# after the grace. Driven by the worker (`runtime/timers.py`); `status` pending | fired |
# cancelled. Firing flips pending to fired in the transaction that performs the timer's
# effects, so a timer fires once however many workers see it due. `key` makes arming the same
# timer twice a no-op (`<kind>:<accession>:<round>`).
timers = Table(
    "timers", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(80), nullable=False, unique=True),
    Column("accession", String(16), ForeignKey("cases.accession"), nullable=False),
    Column("kind", String(12), nullable=False),  # reminder | escalation
    Column("due_at", String(32), nullable=False),
    Column("status", String(10), nullable=False, default="pending"),
    Column("created_at", String(32), nullable=False),
    Column("fired_at", String(32)),
)
Index("ix_timers_due", timers.c.status, timers.c.due_at)

# Absences of pool members entered through the admin API (0008); those of
# mappings/routing.toml are read from the file. Dates inclusive, YYYY-MM-DD.
absences = Table(
    "absences", metadata,
    Column("id", Integer, primary_key=True),
    Column("member", String(64), nullable=False),
    Column("starts_on", String(10), nullable=False),
    Column("ends_on", String(10), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", String(32), nullable=False),
)

# Work that one process at a time does (the Orthanc Changes Log cursor, the routing timers),
# owned by the process that last renewed the lease; another takes it once `expires_at` passed
# (a holder SIGKILLed renews nothing). Used on PostgreSQL only: on SQLite one process serves
# (connector/store/leases.py).
leases = Table(
    "leases", metadata,
    Column("name", String(50), primary_key=True),
    Column("owner", String(120), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("renewed_at", String(32), nullable=False),
)
