"""System-wide concerns: run-time configuration, health checks and usage statistics."""
