"""0012: identifiers as an index (`patient_identifiers`), and the identity incidents.

Every existing patients row gives its identifiers to the index: the identifier, the INS and
each other identifier, with the namespace and type its `id_details` kept. An identifier that
two rows already held stays with the older row, and the collision becomes an identity incident
(the identity-vigilance team decides: merge the two, or correct one)."""

import datetime as dt
import json

from sqlalchemy import text

from .. import schema


def upgrade(conn) -> None:
    for table in (schema.patient_identifiers, schema.identity_incidents):
        table.create(conn, checkfirst=True)
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    taken = {(r.identifier, r.authority) for r in conn.execute(
        text("SELECT identifier, authority FROM patient_identifiers"))}
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    rows = conn.execute(text("SELECT id, patient_id, issuer, ins, ins_oid, other_ids, id_details "
                             "FROM patients ORDER BY id")).all()
    for row in rows:
        details = {(d[0], d[1]): (d[2], d[3]) for d in json.loads(row.id_details or "[]")}
        found = [(row.patient_id, row.issuer),
                 *(tuple(pair) for pair in json.loads(row.other_ids or "[]"))]
        if row.ins:
            found.append((row.ins, row.ins_oid))
        for identifier, authority in dict.fromkeys(found):
            if (identifier, authority) in taken:
                conn.execute(text(
                    "INSERT INTO identity_incidents (at, kind, message_type, sender, control_id,"
                    " reason, location) VALUES (:at, 'conflict', 'migration', '', '', :reason, '')"),
                    {"at": now, "reason": "an identifier was held by two patient records before "
                                          "the identifier index; it stays with the older one"})
                continue
            taken.add((identifier, authority))
            namespace, kind = details.get((identifier, authority), ("", ""))
            if not kind and (identifier, authority) == (row.ins, row.ins_oid):
                kind = "INS"
            conn.execute(text(
                "INSERT INTO patient_identifiers (patient_pk, identifier, authority, namespace,"
                " type) VALUES (:pk, :identifier, :authority, :namespace, :type)"),
                {"pk": row.id, "identifier": identifier, "authority": authority,
                 "namespace": namespace, "type": kind})
