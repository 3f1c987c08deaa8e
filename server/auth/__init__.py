"""Accounts: passwords, signed cookies, sessions, who may do what, and the watch on ended sessions."""
