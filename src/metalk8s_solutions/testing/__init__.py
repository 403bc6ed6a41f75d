"""Test a Solution, or this product, against real components without Docker.

- :mod:`.controlplane`: etcd, kube-apiserver, controller-manager, scheduler and KWOK on loopback;
- :mod:`.realnode`: real nodes (kubelet, containerd, runc, CNI) and the sweep of what they make;
- :mod:`.podtool`: the static program and images (pause, test server) the real nodes run;
- :mod:`.registry`: Debian's docker-registry on loopback;
- :mod:`.binaries`: builds the control-plane binaries from pinned Go modules, cached by version;
- :mod:`.pytest_plugin`: fixtures (``local_cluster``, ``kube_namespace``, ``mint_kubeconfig``,
  ``local_registry``, ``skopeo``), loaded automatically by pytest.
"""
