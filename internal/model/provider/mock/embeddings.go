package mock

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"math"
	"net/http"

	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/translate"
)

// DefaultDimensions is the length of a mock embedding unless the request
// asks for "dimensions".
const DefaultDimensions = 8

const maxDimensions = 4096

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

func (p *Provider) embeddings(req *provider.Request) (*provider.Response, error) {
	var r struct {
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
		Dimensions     int             `json:"dimensions"`
	}
	if json.Unmarshal(req.Body, &r) != nil {
		return translate.ErrorResponse(provider.OpEmbeddings, http.StatusBadRequest, errBadBody.Error()), nil
	}
	inputs, tokens, err := embeddingInputs(r.Input)
	if err == nil && (r.Dimensions < 0 || r.Dimensions > maxDimensions) {
		err = errors.New("dimensions must be between 1 and 4096")
	}
	if err == nil && r.EncodingFormat != "" && r.EncodingFormat != "float" && r.EncodingFormat != "base64" {
		err = errors.New(`encoding_format must be "float" or "base64"`)
	}
	if err != nil {
		return translate.ErrorResponse(provider.OpEmbeddings, http.StatusBadRequest, err.Error()), nil
	}
	dims := r.Dimensions
	if dims == 0 {
		dims = DefaultDimensions
	}
	data := make([]embedding, len(inputs))
	for i, in := range inputs {
		vec := Vector(in, dims)
		data[i] = embedding{Object: "embedding", Index: i, Embedding: vec}
		if r.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(f))
			}
			data[i].Embedding = base64.StdEncoding.EncodeToString(buf)
		}
	}
	body, _ := json.Marshal(struct {
		Object string         `json:"object"`
		Data   []embedding    `json:"data"`
		Model  string         `json:"model"`
		Usage  map[string]int `json:"usage"`
	}{"list", data, req.Model, map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
	return jsonResponse(http.StatusOK, body), nil
}

// embeddingInputs reads "input": a string, an array of strings, an array of
// token ids or an array of such arrays. It returns the bytes each vector is
// derived from and the token count.
func embeddingInputs(raw json.RawMessage) ([][]byte, int, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return [][]byte{[]byte(s)}, countWords(s), nil
	}
	var ss []string
	if json.Unmarshal(raw, &ss) == nil && len(ss) > 0 {
		out, n := make([][]byte, len(ss)), 0
		for i, s := range ss {
			out[i], n = []byte(s), n+countWords(s)
		}
		return out, n, nil
	}
	var toks []int
	if json.Unmarshal(raw, &toks) == nil && len(toks) > 0 {
		b, _ := json.Marshal(toks)
		return [][]byte{b}, len(toks), nil
	}
	var many [][]int
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		out, n := make([][]byte, len(many)), 0
		for i, t := range many {
			out[i], _ = json.Marshal(t)
			n += len(t)
		}
		return out, n, nil
	}
	return nil, 0, errors.New("input must be a non-empty string, array of strings, or array of token arrays")
}

// Vector is the mock embedding of input: dims numbers drawn from a hash of
// input, scaled to unit length.
func Vector(input []byte, dims int) []float32 {
	h := fnv.New64a()
	h.Write(input)
	x := h.Sum64()
	vec := make([]float32, dims)
	var norm float64
	for i := range vec {
		// splitmix64 step
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		f := float64(z>>11)/float64(1<<53)*2 - 1
		vec[i] = float32(f)
		norm += f * f
	}
	if norm > 0 {
		scale := 1 / math.Sqrt(norm)
		for i := range vec {
			vec[i] = float32(float64(vec[i]) * scale)
		}
	}
	return vec
}
