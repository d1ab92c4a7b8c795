// Throwaway module pinning the helm v3 release that e2e/cluster builds from source.
module flotilla.dev/e2e/helm

go 1.26.0
