"""API credentials: issue (shown once), store as keyed hashes, authenticate by kind."""
