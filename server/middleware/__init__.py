"""ASGI middleware: security headers, allowed hosts, same-origin checks, request body limits."""
