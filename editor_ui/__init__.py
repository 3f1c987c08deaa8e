"""Cowrite's browser code: sources, build configuration and the built bundle the server serves."""
