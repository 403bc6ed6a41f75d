"""The archive file: ISO 9660 reading and writing, its layout, SHA256SUMS, signatures and the
pinning of imported archives.
"""
