"""Billing: dated NGAP tariffs from mappings/billing and the charges an act yields."""
