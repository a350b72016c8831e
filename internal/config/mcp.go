package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// MCP configures the MCP front (/mcp, /mcp/{server}) and the upstream MCP
// servers it aggregates.
type MCP struct {
	// Separator joins a server name and a tool or prompt name in the
	// aggregated front ("github__create_issue").
	Separator string `yaml:"separator"`
	// Resource is this gateway's canonical MCP resource URL
	// ("https://agate.example.com/mcp"); tokens must be audienced to it and it
	// is published in the RFC 9728 protected-resource metadata.
	Resource string `yaml:"resource"`
	// AuthorizationServers are the issuers named in the protected-resource
	// metadata; Agate's own token endpoint issuer by default.
	AuthorizationServers []string `yaml:"authorization_servers"`
	// AllowedOrigins lists the browser origins allowed to call /mcp; a
	// request with any other Origin header is refused (DNS rebinding).
	AllowedOrigins []string `yaml:"allowed_origins"`
	// SessionTimeout closes an MCP session idle this long.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Pinning is "tofu" (a tool's first-seen hash is pinned) or "strict"
	// (only hashes declared in pins are trusted; others are withheld until an
	// admin approves them).
	Pinning string `yaml:"pinning"`
	// InspectResults scans tool results for instructions aimed at the model
	// and labels the session untrusted on a hit.
	InspectResults *bool `yaml:"inspect_results"`
	// Egress restricts the addresses HTTP upstreams may be reached at.
	Egress  MCPEgress   `yaml:"egress"`
	Servers []MCPServer `yaml:"servers"`
}

// MCPEgress is the SSRF guard for HTTP upstreams. Loopback, link-local
// (cloud metadata), private and unspecified addresses are refused unless
// allowed here, both when the config loads and when a connection is made.
type MCPEgress struct {
	// AllowHosts, when non-empty, is the list of host names (or IPs) HTTP
	// upstreams may use; "*.example.com" matches subdomains.
	AllowHosts []string `yaml:"allow_hosts"`
	// AllowCIDRs admits otherwise refused addresses ("10.1.0.0/16").
	AllowCIDRs []string `yaml:"allow_cidrs"`
	// AllowPrivate admits loopback and private ranges (not link-local).
	AllowPrivate bool `yaml:"allow_private"`
}

// MCPServer is one upstream MCP server.
type MCPServer struct {
	Name string `yaml:"name"`
	// Transport is streamable-http, sse or stdio.
	Transport string `yaml:"transport"`
	// URL is the endpoint of an HTTP upstream.
	URL string `yaml:"url"`
	// Command, Args and Env start a stdio upstream.
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	// Credentials are injected into every upstream call by the broker.
	Credentials *MCPCredentials `yaml:"credentials"`
	// Pins maps an upstream tool name to the hex SHA-256 of its name,
	// description and input schema (as `agate` prints it).
	Pins map[string]string `yaml:"pins"`
	// Labels maps an upstream tool name to the session labels its result
	// adds ("pii", "external").
	Labels map[string][]string `yaml:"labels"`
	// Timeout bounds one upstream call.
	Timeout time.Duration `yaml:"timeout"`
	// RestartBackoff is the first wait before reconnecting a failed upstream;
	// it doubles up to RestartBackoffMax.
	RestartBackoff    time.Duration `yaml:"restart_backoff"`
	RestartBackoffMax time.Duration `yaml:"restart_backoff_max"`
}

// MCPCredentials is where an upstream's credential comes from: exactly one
// of Env, File or Mint.
type MCPCredentials struct {
	// Env names an environment variable holding a static secret.
	Env string `yaml:"env"`
	// File is a file holding a static secret (trailing newline trimmed).
	File string `yaml:"file"`
	// Mint asks Agate to mint a short-lived token per call, audienced to
	// Audience (the upstream URL by default).
	Mint     bool          `yaml:"mint"`
	Audience string        `yaml:"audience"`
	TTL      time.Duration `yaml:"ttl"`
	// Header carries the credential to HTTP upstreams ("Authorization" by
	// default, sent as "Bearer <credential>").
	Header string `yaml:"header"`
	// Scheme prefixes the credential in Header; "Bearer" by default for
	// Authorization, none otherwise.
	Scheme string `yaml:"scheme"`
	// EnvVar passes the credential to a stdio upstream as this variable.
	EnvVar string `yaml:"env_var"`
}

var serverName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`)

var pinHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *MCP) applyDefaults() {
	if s.Separator == "" {
		s.Separator = "__"
	}
	if s.SessionTimeout == 0 {
		s.SessionTimeout = 30 * time.Minute
	}
	if s.Pinning == "" {
		s.Pinning = "tofu"
	}
	if s.InspectResults == nil {
		on := true
		s.InspectResults = &on
	}
	for i := range s.Servers {
		sv := &s.Servers[i]
		if sv.Timeout == 0 {
			sv.Timeout = 60 * time.Second
		}
		if sv.RestartBackoff == 0 {
			sv.RestartBackoff = 500 * time.Millisecond
		}
		if sv.RestartBackoffMax == 0 {
			sv.RestartBackoffMax = 30 * time.Second
		}
		if c := sv.Credentials; c != nil {
			if c.Header == "" && c.EnvVar == "" {
				c.Header = "Authorization"
			}
			if c.Header == "Authorization" && c.Scheme == "" {
				c.Scheme = "Bearer"
			}
			if c.Mint && c.TTL == 0 {
				c.TTL = 5 * time.Minute
			}
			if c.Mint && c.Audience == "" {
				c.Audience = sv.URL
			}
		}
	}
}

func (s *MCP) validate(e *errs) {
	if s.Separator == "" || strings.ContainsAny(s.Separator, " /") {
		e.add("mcp.separator", "must be non-empty without spaces or slashes")
	}
	if s.Resource != "" {
		if u, err := url.Parse(s.Resource); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			e.add("mcp.resource", "must be an absolute http(s) URL without fragment")
		}
	}
	for i, o := range s.AllowedOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || u.Scheme == "" || u.Host == "" || u.Path != "") {
			e.add(fmt.Sprintf("mcp.allowed_origins[%d]", i), "must be an origin like https://app.example.com, not %q", o)
		}
	}
	switch s.Pinning {
	case "tofu", "strict":
	default:
		e.add("mcp.pinning", "must be tofu or strict, not %q", s.Pinning)
	}
	if s.SessionTimeout < 0 {
		e.add("mcp.session_timeout", "must not be negative")
	}
	var allowed []netip.Prefix
	for i, c := range s.Egress.AllowCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			e.add(fmt.Sprintf("mcp.egress.allow_cidrs[%d]", i), "is not a CIDR: %q", c)
			continue
		}
		allowed = append(allowed, p)
	}
	names := map[string]bool{}
	for i, sv := range s.Servers {
		path := fmt.Sprintf("mcp.servers[%d]", i)
		switch {
		case !serverName.MatchString(sv.Name):
			e.add(path+".name", "must be 1-64 letters, digits, '_' or '-', starting with a letter or digit, not %q", sv.Name)
		case strings.Contains(sv.Name, s.Separator):
			e.add(path+".name", "must not contain the separator %q: namespaced tool names would clash", s.Separator)
		case names[sv.Name]:
			e.add(path+".name", "duplicate server %q", sv.Name)
		}
		names[sv.Name] = true
		switch sv.Transport {
		case "streamable-http", "sse":
			if sv.Command != "" {
				e.add(path+".command", "only applies to stdio servers")
			}
			u, err := url.Parse(sv.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				e.add(path+".url", "must be an absolute http(s) URL")
				break
			}
			if msg := egressRefusal(s.Egress, allowed, u.Hostname()); msg != "" {
				e.add(path+".url", "%s", msg)
			}
		case "stdio":
			if sv.Command == "" {
				e.add(path+".command", "is required for stdio servers")
			}
			if sv.URL != "" {
				e.add(path+".url", "only applies to HTTP servers")
			}
		default:
			e.add(path+".transport", "must be streamable-http, sse or stdio, not %q", sv.Transport)
		}
		for tool, h := range sv.Pins {
			if !pinHash.MatchString(h) {
				e.add(path+".pins."+tool, "must be a lowercase hex SHA-256 (64 characters)")
			}
		}
		if sv.Timeout < 0 {
			e.add(path+".timeout", "must not be negative")
		}
		if sv.RestartBackoff > sv.RestartBackoffMax {
			e.add(path+".restart_backoff", "must not exceed restart_backoff_max")
		}
		if c := sv.Credentials; c != nil {
			n := 0
			for _, set := range []bool{c.Env != "", c.File != "", c.Mint} {
				if set {
					n++
				}
			}
			if n != 1 {
				e.add(path+".credentials", "needs exactly one of env, file or mint")
			}
			if sv.Transport == "stdio" && c.EnvVar == "" {
				e.add(path+".credentials.env_var", "is required for stdio servers: it names the variable the credential is passed in")
			}
			if c.TTL < 0 {
				e.add(path+".credentials.ttl", "must not be negative")
			}
		}
	}
}

// egressRefusal returns why an HTTP upstream host is refused at load time,
// or "" when it is admitted. Host names are checked against allow_hosts
// here and their addresses again when a connection is made.
func egressRefusal(eg MCPEgress, allowed []netip.Prefix, host string) string {
	if len(eg.AllowHosts) > 0 && !HostAllowed(eg.AllowHosts, host) {
		return fmt.Sprintf("host %q is not in mcp.egress.allow_hosts", host)
	}
	if strings.EqualFold(host, "metadata.google.internal") || strings.EqualFold(host, "metadata") {
		return fmt.Sprintf("host %q is a cloud metadata endpoint", host)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		if strings.EqualFold(host, "localhost") && !eg.AllowPrivate {
			return `host "localhost" is loopback; set mcp.egress.allow_private to use it`
		}
		return ""
	}
	if why := AddrRefusal(addr, eg.AllowPrivate, allowed); why != "" {
		return fmt.Sprintf("address %s is %s", addr, why)
	}
	return ""
}

// HostAllowed reports whether host matches one of the patterns; a pattern
// "*.example.com" matches every subdomain of example.com.
func HostAllowed(patterns []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(p)
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if strings.HasSuffix(host, suffix) {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}

// AddrRefusal returns what kind of address a refused upstream address is
// ("link-local", "private", ...), or "" when it may be dialled. Link-local
// addresses (cloud metadata) are refused even with allowPrivate; a prefix in
// allowed admits anything.
func AddrRefusal(a netip.Addr, allowPrivate bool, allowed []netip.Prefix) string {
	a = a.Unmap()
	for _, p := range allowed {
		if p.Contains(a) {
			return ""
		}
	}
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "link-local (cloud metadata)"
	case a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return "multicast"
	case allowPrivate:
		return ""
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case cgnat.Contains(a):
		return "shared address space (RFC 6598)"
	}
	return ""
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")
