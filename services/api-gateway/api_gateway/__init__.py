"""api-gateway: the seed API over HTTP. Commands out, ``*Changed`` events in."""

SERVICE = "api-gateway"
