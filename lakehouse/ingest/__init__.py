"""Ingest: streaming CSV -> typed Parquet -> storage -> catalog."""
