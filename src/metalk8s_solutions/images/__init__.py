"""OCI images: the image index of an archive, image sources, the built-in registry and the push
client.
"""
