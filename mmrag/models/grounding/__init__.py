"""Open-vocabulary detection and phrase grounding adapters."""
