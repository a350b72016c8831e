package mcp

// SetFastPath turns the fast path (stateless tools/call and tools/list,
// raw upstream calls) on or off, so tests can compare it with the SDK's.
func SetFastPath(f *Front, on bool) { f.noFast = !on }

// FastServed is the number of requests the fast path served and of calls
// forwarded raw.
func FastServed(f *Front) int64 { return f.fastServed.Load() }

// SessionFastServed is the number of calls in MCP sessions the fast path
// served without the SDK's server session.
func SessionFastServed(f *Front) int64 { return f.sessionFast.Load() }
