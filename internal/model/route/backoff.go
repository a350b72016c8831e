package route

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff is the wait before retry number try+1 of a target: base doubled
// per try and capped at max, then jittered into [d/2, d) by rnd, which
// returns a number in [0, 1). A max of 0 means no cap.
func backoff(try int, base, max time.Duration, rnd func() float64) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base
	for i := 0; i < try; i++ {
		if (max > 0 && d >= max) || d > math.MaxInt64/2 {
			break
		}
		d *= 2
	}
	if max > 0 && d > max {
		d = max
	}
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

// maxRetryAfterSeconds keeps a huge Retry-After from overflowing a
// Duration; any such wait is far beyond every cap.
const maxRetryAfterSeconds = 1 << 30

// retryAfter parses a Retry-After header value, either delay seconds or an
// HTTP date, into a wait from now. ok is false when the value is absent or
// malformed. A date in the past is a wait of 0.
func retryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, maxRetryAfterSeconds)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
