"""Formats, pure: the manifest, the configuration file, versions and their order, validation
findings, CRD and RBAC rules read as data; no I/O beyond reading bytes given to it.
"""
