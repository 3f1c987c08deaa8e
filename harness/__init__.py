"""What tests and benchmarks share to drive a real Cowrite: server processes, accounts, a Yjs client."""
