"""Simulators of hosted registries for the test bed (stdlib only): ``ghcr`` (ghcr.io with the
GitHub REST API's packages endpoints) and ``dockerhub`` (Docker Hub with its Hub API), each in
front of a real Distribution registry; ``common`` holds what they share."""
