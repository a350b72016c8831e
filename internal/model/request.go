package model

import (
	"errors"
	"net/http"

	"github.com/agate-gateway/agate/internal/model/body"
)

// bodyFields reads the fields a decision needs from a request body and
// turns a malformed body into the client's 400.
func bodyFields(raw []byte) (body.Fields, error) {
	if len(raw) == 0 {
		return body.Fields{}, Errorf(http.StatusBadRequest, KindInvalidRequest, "the request body is empty; send a JSON object")
	}
	f, err := body.Peek(raw)
	if err != nil {
		var se *body.SyntaxError
		if errors.As(err, &se) {
			return f, Errorf(http.StatusBadRequest, KindInvalidRequest, "malformed JSON in the request body: %s", se.Error())
		}
		return f, Errorf(http.StatusBadRequest, KindInvalidRequest, "malformed request body: %s", err.Error())
	}
	if !f.HasModel || f.Model == "" {
		return f, &Error{Status: http.StatusBadRequest, Kind: KindInvalidRequest, Param: "model", Message: "the request body needs a \"model\" string"}
	}
	return f, nil
}

func ensureIncludeUsage(raw []byte) ([]byte, bool) { return body.EnsureIncludeUsage(raw) }
