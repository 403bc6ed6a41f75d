// Pins gopkg.in/yaml.v2, the YAML library MetalK8s Solution operators load their OperatorConfig
// with; built by tests/go_tools.py for tests/integration/test_metalk8s_upstream.py.
module metalk8s-solutions.local/operator-config-check

go 1.24.0

require gopkg.in/yaml.v2 v2.4.0
