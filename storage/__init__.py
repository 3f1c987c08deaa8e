"""Cowrite's database: tables, migrations and queries (documents, updates, suggestions)."""
