package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/http"
)

// CertThumbprint is the RFC 8705 x5t#S256 of a certificate: the base64url
// SHA-256 of its DER encoding.
func CertThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// RequestThumbprint is the x5t#S256 of the client certificate a request
// came with over TLS, or "" when it had none. The TLS handshake has proved
// the client holds the certificate's private key.
func RequestThumbprint(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return CertThumbprint(r.TLS.PeerCertificates[0])
}
