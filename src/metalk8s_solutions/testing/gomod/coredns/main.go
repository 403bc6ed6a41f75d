// coredns: CoreDNS with only the plugins the local cluster's DNS needs.
//
// CoreDNS's own main package links every plugin it ships (cloud DNS providers with their SDKs
// among them); this one registers the few that a Corefile serving cluster.local from the API
// server uses, which keeps the build within the test budget.  Same code, same Corefile syntax.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order in which the plugins handle a query (a subset of CoreDNS's plugin.cfg, same order).
var directives = []string{"ready", "health", "bind", "errors", "log", "cache", "kubernetes"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
