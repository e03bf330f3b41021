"""Thin entrypoints: ASGI server / Lambda for HTTP; local worker / Lambda for the projector."""
