"""Metadata database: tables, engine, migrations. The source of truth for what exists."""
