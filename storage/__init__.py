"""Database access: SQLite (embedded default) and PostgreSQL."""
