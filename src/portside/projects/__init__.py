"""Projects: the namespaces repositories live in, their members, and their storage quotas."""
