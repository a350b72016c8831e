package route

import (
	"net"
	"net/http"
	"time"

	"github.com/agate-gateway/agate/internal/config"
)

// Transport returns an HTTP transport for provider clients that bounds
// connecting (TCP and TLS handshake) by t.Connect. First-byte and total
// timeouts are not set here: the Router enforces them per attempt through
// the request context, since they may differ per model. Proxies come from
// the environment, as with http.DefaultTransport.
func Transport(t config.Timeouts) *http.Transport {
	d := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	if t.Connect > 0 {
		tr.TLSHandshakeTimeout = t.Connect
	}
	// The gateway talks to few hosts, many requests at a time.
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	tr.ForceAttemptHTTP2 = true
	return tr
}
