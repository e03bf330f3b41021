"""Command-line client and small SDK for the middleware's HTTP API."""
