"""Where cached entries, leases, shared tokens and shared buckets live."""
