// Pins the KEDA release whose own CRDs the tests install: `e2e/cluster build` fetches this module through
// the Go module proxy (checksum database verified, and checked against go.sum here) and copies
// config/crd/bases/*.yaml into the cache. Not compiled: KEDA v2.21.1 needs Go >= 1.27.4, newer than the
// toolchains this project's machines have, so `go build` is never run in this folder.
module flotilla.dev/e2e/keda

go 1.26.0

require github.com/kedacore/keda/v2 v2.21.1
