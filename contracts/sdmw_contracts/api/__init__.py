"""Request bodies, query parameters and response bodies of the seed HTTP API.

Field names follow the seed API exactly (including its mixed casing), so
clients written for it work unchanged.
"""
