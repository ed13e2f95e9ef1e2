"""Versioned migrations, applied in order by `db.migrate()`; each is `upgrade(connection)`.

A migration is never edited once released: later changes add a new numbered module.
"""

from . import m0001_initial

MIGRATIONS = [
    (1, "initial", m0001_initial.upgrade),
]
