"""The AWS deployment: a core stack and one stack per service, rendered with the CDK from the declarations."""
