"""Main networks. Every model implements engine.models.base.CLModel."""
