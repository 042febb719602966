"""Domain logic. Services take a session, flush, raise PagecastError, and never commit."""
