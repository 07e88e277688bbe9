package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// serverTotals are an API server's apiserver_request_duration_seconds sums
// and counts for one verb of one resource: the server's own time per
// request, from the request's arrival (its request-received-timestamp
// filter) to the response written, as kube-apiserver and kubesim both
// record it. A client's decoding and scheduling are not in it.
type serverTotals struct {
	seconds float64
	count   float64
}

// requestTotals scrapes /metrics for verb (POST, GET, LIST, ...) on
// resource (no subresource).
func requestTotals(ctx context.Context, cs kubernetes.Interface, verb, resource string) (serverTotals, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return serverTotals{}, fmt.Errorf("unable to read /metrics: %w", err)
	}
	var t serverTotals
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var sum bool
		switch {
		case strings.HasPrefix(line, "apiserver_request_duration_seconds_sum{"):
			sum = true
		case strings.HasPrefix(line, "apiserver_request_duration_seconds_count{"):
		default:
			continue
		}
		end := strings.LastIndex(line, "}")
		labels, value := line[strings.Index(line, "{")+1:end], strings.TrimSpace(line[end+1:])
		if !strings.Contains(labels, `verb="`+verb+`"`) || !strings.Contains(labels, `resource="`+resource+`"`) || !strings.Contains(labels, `subresource=""`) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return serverTotals{}, fmt.Errorf("unable to parse %q: %w", line, err)
		}
		if sum {
			t.seconds += v
		} else {
			t.count += v
		}
	}
	return t, sc.Err()
}

// serverTime measures the server's mean time per request of verb on
// resource while fn runs.
func serverTime(ctx context.Context, cs kubernetes.Interface, verb, resource string, fn func() error) (mean float64, n float64, err error) {
	before, err := requestTotals(ctx, cs, verb, resource)
	if err != nil {
		return 0, 0, err
	}
	if err := fn(); err != nil {
		return 0, 0, err
	}
	after, err := requestTotals(ctx, cs, verb, resource)
	if err != nil {
		return 0, 0, err
	}
	n = after.count - before.count
	if n <= 0 {
		return 0, 0, fmt.Errorf("no %s %s request recorded in apiserver_request_duration_seconds", verb, resource)
	}
	return (after.seconds - before.seconds) / n, n, nil
}
