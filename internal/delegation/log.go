package delegation

import (
	"log/slog"
	"net/http"
)

func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}

func slogErr(r *http.Request, e *oauthError) []slog.Attr {
	return []slog.Attr{
		slog.String("path", r.URL.Path),
		slog.String("error", e.Code),
		slog.String("cause", e.Error()),
	}
}
