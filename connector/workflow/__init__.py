"""The orchestration: one module per step of the flow, each a function over the store and ports.

Adapters (hl7, dicom, archive, reports, billing, store, api) never import each other; the
modules here wire them. `bootstrap.build()` is the only place that creates engines and clients.
"""
