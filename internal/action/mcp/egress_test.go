package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/config"
)

func TestEgressControl(t *testing.T) {
	strict, _ := newEgress(config.MCPEgress{})
	private, _ := newEgress(config.MCPEgress{AllowPrivate: true})
	cidr, _ := newEgress(config.MCPEgress{AllowCIDRs: []string{"10.1.0.0/16"}})
	for _, tc := range []struct {
		e    *egress
		addr string
		want string
	}{
		{strict, "169.254.169.254:80", "link-local"},
		{private, "169.254.169.254:80", "link-local"},
		{strict, "[fe80::1]:80", "link-local"},
		{strict, "127.0.0.1:80", "loopback"},
		{strict, "10.0.0.1:443", "private"},
		{strict, "192.168.1.1:443", "private"},
		{strict, "[::ffff:10.0.0.1]:443", "private"},
		{strict, "0.0.0.0:80", "unspecified"},
		{strict, "100.64.0.1:80", "shared address space"},
		{private, "10.0.0.1:443", ""},
		{cidr, "10.1.2.3:443", ""},
		{cidr, "10.2.0.1:443", "private"},
		{strict, "93.184.216.34:443", ""},
	} {
		err := tc.e.control("tcp", tc.addr, nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.addr, err, tc.want)
		}
	}
}

func TestEgressRefusedAtConnectTime(t *testing.T) {
	hit := false
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer up.Close()
	e, _ := newEgress(config.MCPEgress{})
	c := &http.Client{Transport: e.transport()}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", up.URL, nil)
	_, err := c.Do(req)
	if err == nil || !strings.Contains(err.Error(), "egress refused") || hit {
		t.Fatalf("loopback upstream reached: %v", err)
	}
	// "localhost" resolves to loopback and is refused just the same.
	_, err = c.Get(strings.Replace(up.URL, "127.0.0.1", "localhost", 1))
	if err == nil || hit {
		t.Fatalf("localhost upstream reached: %v", err)
	}
}
