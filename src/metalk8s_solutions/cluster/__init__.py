"""Kubernetes access: the API client and its kubeconfig, applying and pruning objects, the cluster
record and the environments' state.
"""
