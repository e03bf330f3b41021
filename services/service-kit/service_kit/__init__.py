"""Plumbing shared by every service; no service logic lives here."""
