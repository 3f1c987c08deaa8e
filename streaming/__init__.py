"""Cowrite's generation engine: prompts in, token streams out, for many writers at once.

Knows nothing of HTTP, users or documents; `server/` wires it to the outside.
"""
