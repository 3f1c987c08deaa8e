"""Suggestions: the suggestion socket, its protocol, and the OpenAI-compatible routes."""
