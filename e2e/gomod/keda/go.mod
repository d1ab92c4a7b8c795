// Pins the KEDA release whose CRDs the tests install and whose operator the keda scaling test runs:
// `e2e/cluster build` fetches this module through the Go module proxy (checksum database verified, and
// checked against go.sum here), copies config/crd/bases/*.yaml into the cache and builds cmd/operator in
// the unpacked module (its own go.mod carries `replace` pins that a dependent module would ignore), so
// `go build` is never run in this folder. v2.20.2: the newest release whose `go` directive (1.26.0) the
// project's Go 1.26 toolchain meets (v2.21.x needs 1.27.4).
module flotilla.dev/e2e/keda

go 1.26.0

require github.com/kedacore/keda/v2 v2.20.2
