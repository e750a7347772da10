package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseGauge(t *testing.T) {
	body := []byte("# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 1.2345e+08\ngo_memstats_heap_inuse_bytes_total 7\n")
	for _, tc := range []struct {
		name   string
		metric string
		want   float64
		ok     bool
	}{
		{"present", "go_memstats_heap_inuse_bytes", 1.2345e8, true},
		{"prefix of another name only", "go_memstats_heap", 0, false},
		{"absent", "process_resident_memory_bytes", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseGauge(body, tc.metric)
			assert.Equal(t, tc.ok, ok)
			assert.InDelta(t, tc.want, got, 1)
		})
	}
}
