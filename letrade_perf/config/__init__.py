"""Profiles, environments and credentials (profile schema and loader)."""
