"""Tenants and their API keys: who a caller is, what it may do, and how much."""
