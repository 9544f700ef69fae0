"""The gateway: ingest -> validate -> dedupe -> case -> dispatch, plus the HTTP API."""
