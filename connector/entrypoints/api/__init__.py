"""HTTP API (FastAPI): translates requests into workflow calls and errors into problem+json."""
