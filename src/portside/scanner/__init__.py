"""Vulnerability scanning and SBOMs: reading images, finding packages, matching advisories."""
