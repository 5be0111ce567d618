"""Models: a registry maps spec strings to adapters. Imports nothing of the service."""
