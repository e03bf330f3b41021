"""Contracts shared by every service: HTTP API models and event models.

Services depend on this package and on nothing of each other's.
"""
