// podtool: the one program inside the images the harness builds for its real nodes.
//
// As /pause (the CRI sandbox image) it sleeps until SIGTERM/SIGINT and reaps orphans, like
// Kubernetes' pause.  As "/podtool serve [ADDR]" (the test image) it prints one line to its log
// and answers every HTTP request with "podtool <hostname>".  Static (CGO_ENABLED=0), no dependency.
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

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
	if filepath.Base(os.Args[0]) == "pause" || len(os.Args) == 1 {
		pause()
		return
	}
	fmt.Fprintf(os.Stderr, "usage: %s [serve [ADDR]]\n", os.Args[0])
	os.Exit(2)
}
