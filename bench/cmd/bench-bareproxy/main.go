// Command bench-bareproxy is the floor of the Agate benchmark: a bare
// httputil.ReverseProxy in front of one upstream, with the same upstream
// connection pool sizes as Agate's transport. It reads each request body
// whole before forwarding, as Agate does (a proxy that streams the request
// body straight through can lose the end of SSE responses: golang/go#40747).
//
// It prints "listening http://ADDR" on stdout once it accepts connections.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"runtime/trace"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "base URL of the upstream, e.g. http://127.0.0.1:9000")
	maxBody := flag.Int64("max-body", 10<<20, "largest request body accepted, in bytes")
	pprofAddr := flag.String("pprof", "", "serve /debug/pprof/ on this address too, to compare with Agate's")
	flag.Parse()
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr); err != nil {
			fmt.Fprintln(os.Stderr, "bench-bareproxy:", err)
			os.Exit(1)
		}
	}
	if err := run(*listen, *upstream, *maxBody); err != nil {
		fmt.Fprintln(os.Stderr, "bench-bareproxy:", err)
		os.Exit(1)
	}
}

func run(listen, upstream string, maxBody int64) error {
	target, err := url.Parse(upstream)
	if err != nil || target.Host == "" {
		return fmt.Errorf("-upstream %q is not a base URL", upstream)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	tr.ForceAttemptHTTP2 = true
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: tr,
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The region Agate gives each request (gateway.RequestRegion), so
		// that execution traces of the two read alike (trace-regions).
		defer trace.StartRegion(r.Context(), "http request").End()
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			status := http.StatusBadRequest
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				status = http.StatusRequestEntityTooLarge
			}
			http.Error(w, "request body", status)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return srv.Serve(ln)
}

// servePprof serves the profiles on their own listener, out of the
// proxy's way.
func servePprof(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return nil
}
