"""The audit log: who did what to which resource, when, from where, and whether it worked."""
