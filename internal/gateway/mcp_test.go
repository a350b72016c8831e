package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/openai/openai-go/v3"
)

type bearerRT struct {
	token string
	base  http.RoundTripper
}

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// crmServer is an upstream MCP server with a tool that returns personal
// data, a mail tool and a tool nobody may call.
func crmServer(t *testing.T) string {
	srv := sdk.NewServer(&sdk.Implementation{Name: "crm"}, nil)
	text := func(s string) *sdk.CallToolResult {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: s}}}
	}
	sdk.AddTool(srv, &sdk.Tool{Name: "read_customer", Description: "Read a customer record."}, func(_ context.Context, _ *sdk.CallToolRequest, in struct {
		ID string `json:"id"`
	}) (*sdk.CallToolResult, any, error) {
		return text("customer " + in.ID + ": alice@example.com"), nil, nil
	})
	sdk.AddTool(srv, &sdk.Tool{Name: "send_email", Description: "Send an email."}, func(_ context.Context, _ *sdk.CallToolRequest, in struct {
		To string `json:"to"`
	}) (*sdk.CallToolResult, any, error) {
		return text("sent to " + in.To), nil, nil
	})
	sdk.AddTool(srv, &sdk.Tool{Name: "drop_tables", Description: "Drop every table."}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
		return text("dropped"), nil, nil
	})
	sdk.AddTool(srv, &sdk.Tool{Name: "make_payment", Description: "Pay."}, func(_ context.Context, _ *sdk.CallToolRequest, in struct {
		Amount int `json:"amount"`
	}) (*sdk.CallToolResult, any, error) {
		return text(fmt.Sprintf("paid %d", in.Amount)), nil, nil
	})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestMCPThroughGateway drives the official go-sdk client through the
// gateway's /mcp, decided by Cedar, with sessions and audit: a caller sees
// only its tools, and after reading personal data the mail tool is denied
// (the lethal trifecta).
func TestMCPThroughGateway(t *testing.T) {
	upstream := crmServer(t)
	tg, _ := startGateway(t, `
mcp:
  egress: {allow_private: true}
  servers:
    - name: crm
      transport: streamable-http
      url: `+upstream+`
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := sdk.NewClient(&sdk.Implementation{Name: "agent"}, nil)
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: tg.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearerRT{tg.ClientKey, http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "crm__make_payment,crm__read_customer,crm__send_email" {
		t.Fatalf("listed %v", names)
	}
	call := func(name string, args map[string]any) (*sdk.CallToolResult, error) {
		return cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	}
	if res, err := call("crm__send_email", map[string]any{"to": "bob@example.com"}); err != nil || res.IsError {
		t.Fatalf("mail before pii: %v %+v", err, res)
	}
	if _, err := call("crm__drop_tables", nil); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("unlisted tool: %v", err)
	}
	res, err := call("crm__read_customer", map[string]any{"id": "42"})
	if err != nil || res.IsError {
		t.Fatalf("read: %v %+v", err, res)
	}
	_, err = call("crm__send_email", map[string]any{"to": "bob@example.com"})
	if err == nil || !strings.Contains(err.Error(), "no email once the session holds personal data") || !strings.Contains(err.Error(), "no-mail-after-pii") {
		t.Fatalf("mail after pii: %v", err)
	}

	// Each decision is in the audit trail; allowed invocations were
	// committed before they ran, denials follow within the batch linger.
	seen := map[string]int{}
	for _, r := range auditRecords(t, tg, "kind=tool_invocation", 4) {
		seen[r["resource"].(string)+" "+r["decision"].(string)]++
	}
	if seen["tool:crm__send_email allow"] != 1 || seen["tool:crm__send_email deny"] != 1 || seen["tool:crm__read_customer allow"] != 1 || seen["tool:crm__drop_tables deny"] != 1 {
		t.Fatalf("audit: %v", seen)
	}

	// Without a credential: 401 with the resource metadata (RFC 9728).
	r2, _ := http.Post(tg.URL+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize"}`))
	r2.Body.Close()
	if r2.StatusCode != 401 || !strings.Contains(r2.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("anonymous MCP: %d %v", r2.StatusCode, r2.Header)
	}
}

// TestProposedToolCallStripped: the mock proposes send_email to a domain a
// policy forbids; decision 2 strips it from the answer (plain and
// streamed) and keeps the allowed get_weather.
func TestProposedToolCallStripped(t *testing.T) {
	tg, _ := startGateway(t, "")
	ctx := context.Background()
	c := tg.openai(tg.ClientKey)
	fn := func(name string) openai.ChatCompletionToolUnionParam {
		return openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: name, Parameters: openai.FunctionParameters{"type": "object"}})
	}
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather, then mail it")},
		Tools:    []openai.ChatCompletionToolUnionParam{fn("get_weather"), fn("send_email")},
	}
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	msg := resp.Choices[0].Message
	if len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "get_weather" || !strings.Contains(msg.Content, "no mail to evil.test") {
		t.Fatalf("message %+v", msg)
	}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	msg = acc.Choices[0].Message
	if len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "get_weather" || !strings.Contains(msg.Content, "no mail to evil.test") {
		t.Fatalf("streamed message %+v", msg)
	}
}

// TestApprovalThroughGateway: a Cedar permit marked @approval("required")
// holds the call until an admin answers through the admin API; a granted
// approval lets it run once, a denied one refuses it.
func TestApprovalThroughGateway(t *testing.T) {
	upstream := crmServer(t)
	tg, _ := startGateway(t, `
approvals: {wait: 10s}
mcp:
  egress: {allow_private: true}
  servers:
    - {name: crm, transport: streamable-http, url: `+upstream+`}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := sdk.NewClient(&sdk.Implementation{Name: "agent"}, nil)
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: tg.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearerRT{tg.ClientKey, http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	// answer resolves the next pending approval with verb.
	answer := func(verb string) {
		for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			req, _ := http.NewRequest("GET", tg.URL+"/admin/v1/approvals?status=pending", nil)
			req.Header.Set("Authorization", "Bearer "+tg.AdminKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			var out struct {
				Approvals []struct {
					ID string `json:"id"`
				} `json:"approvals"`
			}
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if len(out.Approvals) == 0 {
				continue
			}
			req, _ = http.NewRequest("POST", tg.URL+"/admin/v1/approvals/"+out.Approvals[0].ID+"/"+verb, strings.NewReader(`{"note":"checked"}`))
			req.Header.Set("Authorization", "Bearer "+tg.AdminKey)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				return
			}
		}
	}
	pay := func() (*sdk.CallToolResult, error) {
		return cs.CallTool(ctx, &sdk.CallToolParams{Name: "crm__make_payment", Arguments: map[string]any{"amount": 12}})
	}
	go answer("approve")
	res, err := pay()
	if err != nil || res.IsError || !strings.Contains(res.Content[0].(*sdk.TextContent).Text, "paid 12") {
		t.Fatalf("approved payment: %v %+v", err, res)
	}
	go answer("deny")
	if _, err := pay(); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("denied payment: %v", err)
	}
	recs := auditRecords(t, tg, "kind=approval", 2)
	if len(recs) < 2 {
		t.Fatalf("approval steps not audited: %v", recs)
	}
}
