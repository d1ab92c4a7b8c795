// Pins the SeaweedFS snapshot whose S3 gateway is the trace store of the capture tests (a real
// S3-compatible server: `weed server -s3` runs master, volume, filer and S3 API in one process).
// `e2e/cluster build` fetches this module through the Go module proxy (checksum database verified, and
// checked against go.sum here), unpacks it into the cache and builds ./weed in the unpacked module (its own
// go.mod carries a `replace` that a dependent module would ignore), so `go build` is never run in this
// folder. SeaweedFS tags no Go-module release (its tags are 3.x without /v3), hence the pseudo-version.
module flotilla.dev/e2e/seaweedfs

go 1.26.6

require github.com/seaweedfs/seaweedfs v0.0.0-20261109003541-7506e5f91cd6
