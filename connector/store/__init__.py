"""Durable state: SQLAlchemy Core tables, migrations, inbox/outbox/audit, read models."""
