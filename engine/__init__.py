"""Lotsen's framework-free core: models, access, audit, crypto and the workflow runtime."""
