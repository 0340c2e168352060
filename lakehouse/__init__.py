"""Lakehouse: upload a CSV over HTTP, query it with SQL over HTTP."""

__version__ = "0.1.0"
