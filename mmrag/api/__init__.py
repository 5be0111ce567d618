"""The REST API: app factory, routes per resource, problem+json errors."""
