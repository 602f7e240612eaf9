"""Versioned consent texts shown at every grant; a grant stores the version and hash."""
