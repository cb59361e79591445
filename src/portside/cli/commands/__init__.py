"""The client-side command groups; each module talks to a registry over /api/v2.0."""
