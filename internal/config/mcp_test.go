package config

import (
	"strings"
	"testing"
	"time"
)

func TestMCPConfig(t *testing.T) {
	good := `
mcp:
  allowed_origins: [https://app.example.com]
  egress:
    allow_hosts: [mcp.example.com, "*.tools.example.com"]
  servers:
    - name: github
      transport: streamable-http
      url: https://mcp.example.com/github
      credentials: {env: GITHUB_TOKEN}
      pins: {create_issue: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}
      labels: {read_repo: [source]}
    - name: files
      transport: stdio
      command: npx
      args: [-y, "@modelcontextprotocol/server-filesystem", /srv]
approvals:
  wait: 10s
`
	c, err := Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.MCP.Separator != "__" || c.MCP.Pinning != "tofu" || !*c.MCP.InspectResults || c.MCP.Servers[0].Timeout != time.Minute {
		t.Fatalf("defaults not applied: %+v", c.MCP)
	}
	if cr := c.MCP.Servers[0].Credentials; cr.Header != "Authorization" || cr.Scheme != "Bearer" {
		t.Fatalf("credential defaults: %+v", cr)
	}
	if c.Approvals.Wait != 10*time.Second || c.Approvals.TTL != 15*time.Minute || c.Approvals.Backend != "memory" {
		t.Fatalf("approvals: %+v", c.Approvals)
	}

	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"metadata address", "mcp:\n  servers:\n    - name: m\n      transport: streamable-http\n      url: http://169.254.169.254/x\n",
			"bad.yaml:5: mcp.servers[0].url: address 169.254.169.254 is link-local (cloud metadata)"},
		{"private address", "mcp:\n  servers:\n    - name: m\n      transport: sse\n      url: http://10.0.0.5/sse\n",
			"bad.yaml:5: mcp.servers[0].url: address 10.0.0.5 is private"},
		{"localhost", "mcp:\n  servers:\n    - name: m\n      transport: sse\n      url: http://localhost:9/sse\n",
			`bad.yaml:5: mcp.servers[0].url: host "localhost" is loopback; set mcp.egress.allow_private to use it`},
		{"not in allowlist", "mcp:\n  egress:\n    allow_hosts: [a.example]\n  servers:\n    - name: m\n      transport: sse\n      url: https://b.example/sse\n",
			`bad.yaml:7: mcp.servers[0].url: host "b.example" is not in mcp.egress.allow_hosts`},
		{"separator in name", "mcp:\n  servers:\n    - name: a__b\n      transport: stdio\n      command: x\n",
			`bad.yaml:3: mcp.servers[0].name: must not contain the separator "__": namespaced tool names would clash`},
		{"duplicate", "mcp:\n  servers:\n    - {name: a, transport: stdio, command: x}\n    - {name: a, transport: stdio, command: y}\n",
			`bad.yaml:4: mcp.servers[1].name: duplicate server "a"`},
		{"transport", "mcp:\n  servers:\n    - {name: a, transport: ws, url: 'wss://x'}\n",
			`bad.yaml:3: mcp.servers[0].transport: must be streamable-http, sse or stdio, not "ws"`},
		{"stdio without command", "mcp:\n  servers:\n    - {name: a, transport: stdio}\n",
			"bad.yaml:3: mcp.servers[0].command: is required for stdio servers"},
		{"two credential sources", "mcp:\n  servers:\n    - name: a\n      transport: streamable-http\n      url: https://x.example\n      credentials: {env: A, file: /b}\n",
			"bad.yaml:6: mcp.servers[0].credentials: needs exactly one of env, file or mint"},
		{"stdio credential without variable", "mcp:\n  servers:\n    - name: a\n      transport: stdio\n      command: x\n      credentials: {env: A}\n",
			"bad.yaml:6: mcp.servers[0].credentials.env_var: is required for stdio servers"},
		{"bad pin", "mcp:\n  servers:\n    - name: a\n      transport: stdio\n      command: x\n      pins: {t: abc}\n",
			"mcp.servers[0].pins.t: must be a lowercase hex SHA-256 (64 characters)"},
		{"pinning", "mcp:\n  pinning: loose\n", `bad.yaml:2: mcp.pinning: must be tofu or strict, not "loose"`},
		{"origin", "mcp:\n  allowed_origins: [app.example.com]\n", `mcp.allowed_origins[0]: must be an origin like https://app.example.com, not "app.example.com"`},
		{"approval wait", "approvals:\n  wait: 1h\n  ttl: 1m\n", "bad.yaml:2: approvals.wait: must not exceed approvals.ttl"},
		{"approval backend", "approvals:\n  backend: redis\n", `bad.yaml:2: approvals.backend: must be memory, not "redis"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}
