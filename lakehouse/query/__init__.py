"""Query: a DuckDB pool behind a sandboxed, read-only SQL API."""
