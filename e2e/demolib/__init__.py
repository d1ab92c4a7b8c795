"""The end-to-end demo on the local cluster (`e2e/demo`, `make demo`) and the pieces the end-to-end
scenarios in e2e/scenarios share with it: load the images, helm-install the operator onto the real node,
apply examples/03-local, port-forward to the router and ask it things.

Standard library only, like clusterlib: it drives the pinned kubectl and helm binaries, so it runs before
the project's virtualenv exists and tests use exactly the commands a person would.
"""
