"""The tamper-evident audit log: append-only records chained by SM3 hashes."""
