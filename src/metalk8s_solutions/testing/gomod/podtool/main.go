// podtool: the one program inside the images the harness builds for its real nodes.
//
// As /pause (the CRI sandbox image) it sleeps until SIGTERM/SIGINT and reaps orphans, like
// Kubernetes' pause.  As "/podtool serve [ADDR]" (the test image) it prints one line to its log
// and answers every HTTP request with "podtool <hostname>".  As "/podtool get URL" it GETs URL
// with the pod's ServiceAccount token and CA (in-cluster credentials) and prints the status.
// On the host, "podtool forward LISTEN TARGET" relays TCP connections (the API server's
// address for pods).  Static (CGO_ENABLED=0), no dependency.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"

// get prints "GET URL: STATUS" and the first line of the body, and exits 0 on a 2xx answer.
func get(url string) {
	pool := x509.NewCertPool()
	if ca, err := os.ReadFile(serviceAccount + "/ca.crt"); err == nil {
		pool.AppendCertsFromPEM(ca)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if token, err := os.ReadFile(serviceAccount + "/token"); err == nil {
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Printf("GET %s: %v\n", url, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Printf("GET %s: %d\n%s\n", url, resp.StatusCode, strings.Join(strings.Fields(string(body)), " "))
	if resp.StatusCode/100 != 2 {
		os.Exit(1)
	}
}

// forward relays every TCP connection accepted on listen to target.
func forward(listen, target string) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("podtool forwarding %s to %s\n", listen, target)
	for {
		conn, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(in net.Conn) {
			defer in.Close()
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer out.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(out, in); done <- struct{}{} }()
			go func() { io.Copy(in, out); done <- struct{}{} }()
			<-done
		}(conn)
	}
}

func pause() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}

func serve(addr string) {
	host, _ := os.Hostname()
	fmt.Printf("podtool serving on %s as %s\n", addr, host)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "podtool %s\n", host)
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		serve(addr)
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "get" {
		get(os.Args[2])
		return
	}
	if len(os.Args) == 4 && os.Args[1] == "forward" {
		forward(os.Args[2], os.Args[3])
		return
	}
	if filepath.Base(os.Args[0]) == "pause" || len(os.Args) == 1 {
		pause()
		return
	}
	fmt.Fprintf(os.Stderr, "usage: %s [serve [ADDR] | get URL | forward LISTEN TARGET]\n", os.Args[0])
	os.Exit(2)
}
