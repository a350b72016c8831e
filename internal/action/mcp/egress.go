package mcp

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/agate-gateway/agate/internal/config"
)

// egress is the SSRF guard of HTTP upstreams: every connection's address
// is checked when it is dialled, after name resolution, so a host name
// that resolves (or re-resolves) to a refused address is refused too.
type egress struct {
	cfg     config.MCPEgress
	allowed []netip.Prefix
}

func newEgress(cfg config.MCPEgress) (*egress, error) {
	e := &egress{cfg: cfg}
	for _, c := range cfg.AllowCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("mcp egress: %w", err)
		}
		e.allowed = append(e.allowed, p)
	}
	return e, nil
}

// control refuses a connection to an address the guard does not admit.
func (e *egress) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("egress: %q is not an address", host)
	}
	if why := config.AddrRefusal(addr, e.cfg.AllowPrivate, e.allowed); why != "" {
		return fmt.Errorf("egress refused: %s is %s", addr, why)
	}
	return nil
}

// transport is an HTTP transport that dials only admitted addresses and
// ignores proxy settings from the environment.
func (e *egress) transport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: e.control}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
