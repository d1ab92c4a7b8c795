// Pins the KubeRay release whose RayService CRD (config/crd/bases/ray.io_rayservices.yaml) the tests install
// to check rendered `engine: kuberay` packs against (operator/flotilla/render/rayservice.py):
// `e2e/cluster build --only kuberay-crds` fetches this module's zip through the Go module proxy (checksum
// database verified, and checked against go.sum here) and copies the CRD into the cache. Nothing is
// compiled (KubeRay's operator is not run), so `go build` is never run in this folder.
module flotilla.dev/e2e/kuberay

go 1.24.0

require github.com/ray-project/kuberay/ray-operator v1.5.0
