// Command echo is a tiny HTTP server for the real node's tests: it answers every request with the pod's
// name and the request path, and with `/get?url=U` fetches U and relays its body, so one pod can prove it
// reaches another through a Service ClusterIP (kube-proxy) without a shell or curl in the image; `/kube?path=P`
// GETs P from the apiserver as an in-cluster client would (KUBERNETES_SERVICE_HOST, the service-account
// token and CA), proving the `kubernetes` Service works for pods such as the operator.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := ":8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	name, _ := os.Hostname()
	client := &http.Client{Timeout: 5 * time.Second}
	http.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	http.HandleFunc("/kube", func(w http.ResponseWriter, r *http.Request) {
		const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
		ca, errCA := os.ReadFile(sa + "ca.crt")
		token, errToken := os.ReadFile(sa + "token")
		if errCA != nil || errToken != nil {
			http.Error(w, fmt.Sprint("no service account: ", errCA, errToken), http.StatusInternalServerError)
			return
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		kube := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		host := os.Getenv("KUBERNETES_SERVICE_HOST") + ":" + os.Getenv("KUBERNETES_SERVICE_PORT")
		req, _ := http.NewRequest(http.MethodGet, "https://"+host+r.URL.Query().Get("path"), nil)
		req.Header.Set("Authorization", "Bearer "+string(token))
		resp, err := kube.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "echo from %s: %s\n", name, r.URL.Path)
	})
	server := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	if err := server.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
