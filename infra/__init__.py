"""Infrastructure: the core stack's declaration, the local stack, and (later) the AWS deployment."""
