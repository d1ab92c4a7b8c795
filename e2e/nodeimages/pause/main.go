// Command pause is the sandbox ("pause") container of the local real node: it holds the pod's namespaces
// open, reaps orphaned children (it is PID 1 of the pod when the PID namespace is shared) and exits on
// SIGTERM or SIGINT, like the upstream pause image, which cannot be pulled here (no registry).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
