// Command operator-config-check loads OperatorConfig files with the rules MetalK8s Solution
// operators apply (scality/metalk8s go/solution-operator-lib/pkg/config): gopkg.in/yaml.v2's
// UnmarshalStrict (unknown keys, duplicate keys and wrong types are refused) into the format's
// types, then the library's checks on the constants and on every repository. It prints the loaded
// configuration as JSON, or the reason on stderr with exit status 1.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"gopkg.in/yaml.v2"
)

// The format, as the operator library declares it.
type operatorConfig struct {
	APIVersion   string                  `yaml:"apiVersion" json:"apiVersion"`
	Kind         string                  `yaml:"kind" json:"kind"`
	Repositories map[string][]repository `yaml:"repositories" json:"repositories"`
}

type repository struct {
	Endpoint string   `yaml:"endpoint" json:"endpoint"`
	Images   []string `yaml:"images" json:"images"`
}

func check(config *operatorConfig) error {
	switch {
	case config.APIVersion != "solutions.metalk8s.scality.com/v1alpha1":
		return fmt.Errorf("apiVersion %q", config.APIVersion)
	case config.Kind != "OperatorConfig":
		return fmt.Errorf("kind %q", config.Kind)
	case len(config.Repositories) == 0:
		return fmt.Errorf("repositories: missing")
	}
	for version, repositories := range config.Repositories {
		if version == "" {
			return fmt.Errorf("repositories: empty version number")
		}
		if len(repositories) == 0 {
			return fmt.Errorf("repositories[%s]: cannot be empty", version)
		}
		for idx, repo := range repositories {
			if repo.Endpoint == "" {
				return fmt.Errorf("repositories[%s].%d: endpoint missing", version, idx)
			}
			for i, image := range repo.Images {
				if image == "" {
					return fmt.Errorf("repositories[%s].%d.images.%d: cannot be empty", version, idx, i)
				}
			}
		}
	}
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: operator-config-check FILE")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var config operatorConfig
	if err := yaml.UnmarshalStrict(data, &config); err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	if err := check(&config); err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(config)
	fmt.Println(string(out))
}
