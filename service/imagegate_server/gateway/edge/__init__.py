"""The edge: where calls arrive and end (servicer, bookkeeping, guard, statuses, wire)."""
