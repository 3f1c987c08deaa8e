"""Cowrite's web server: the only package that wires the engine and storage to the outside."""
