package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestHistoryReadsEveryEvent: a release that ends fast writes more Events
// in its last seconds than `get` shows; the outcome of a revision must
// still be found among all of them.
func TestHistoryReadsEveryEvent(t *testing.T) {
	now := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	events := []eventInfo{}
	for i := range maxEvents + 5 {
		events = append(events, eventInfo{Reason: "ScalingReplicaSet", Message: fmt.Sprintf("Scaled ReplicaSet web-abc %d", i), Last: now})
	}
	events = append(events, eventInfo{Reason: "Succeeded", Message: "Revision abc123 of Deployment web is released", Last: now.Add(-time.Second)})
	rel := &release{Revisions: []revisionInfo{{ID: "abc123"}}, allEvents: events, Events: events[:maxEvents], Now: now}
	assert.Equal(t, "released", outcomes(rel)["abc123"].result)
}
