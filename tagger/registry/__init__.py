"""Talking to container registries: credentials, HTTP transport, the registry API."""
