"""Billing: dated NGAP tariffs and rules from mappings/billing, the charges an act yields, and
their adapters to the accounting feed.

- `tariffs.py`     dated national amounts (ngap.toml)
- `rules.py`       who bills what, limits, non-combination, exclusions (rules.toml)
- `facilities.py`  each facility's own charge codes, department, amounts (facilities.toml)
- `engine.py`      `evaluate(act)` -> charges + not billable; `credits_for`; `explain`
- `csvfeed.py`     one CSV file per batch, dropped atomically in a folder
- `reconcile.py`   totals over recorded charge rows for a period
- `teleexpertise.py` FT1-2 transaction ids of charges and their credits
- `rowfile.py`     reading the `[[section]]` row files above, with a line number per row
"""
