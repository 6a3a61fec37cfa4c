"""imagegate client stubs (generated; do not edit)."""
