"""HTTP API routers (FastAPI). HTTP only: validation, auth, and calls into services."""
