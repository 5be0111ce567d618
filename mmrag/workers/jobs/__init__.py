"""Bulk annotation jobs: typed specs, persisted per-item state, the driver, exports."""
