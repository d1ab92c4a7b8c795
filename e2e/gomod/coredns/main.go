// Command coredns is CoreDNS with only the plugins the local cluster's DNS needs: the upstream binary
// links every plugin, cloud DNS SDKs included, which would multiply the build on a 2-core machine. This
// is CoreDNS's documented way to compile a custom plugin set: set dnsserver.Directives (in chain order,
// as upstream's plugin.cfg), import those plugins, call coremain.Run.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "cache", "kubernetes", "forward"}
}

func main() {
	coremain.Run()
}
