"""The web UI and its HTTP API: the same engine calls as the CLI, with sessions, RBAC checks and
uploads.
"""
