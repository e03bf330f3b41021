"""HTTP routes, one module per area of the seed API. Routes are thin: validate, read or send, shape."""
