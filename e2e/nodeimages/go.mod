// Tiny static programs baked into the real node's local images (no registry here): the sandbox (pause)
// image and an HTTP echo server for the Service tests. Standard library only, so it builds offline.
module flotilla.dev/e2e/nodeimages

go 1.24
