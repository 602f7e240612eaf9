"""Xinyidai risk-model library: tables (pandas DataFrames) in, tables out; no Flask, no database."""
