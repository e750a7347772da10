package webhook

import (
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	k8smetrics "k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// The result label of admissionDuration.
const (
	resultAllowed = "allowed" // admitted unchanged
	resultHeld    = "held"    // admitted with the patch that holds the workload
	resultDenied  = "denied"  // refused (no Rollout cache and no client, a bad object)
	resultInvalid = "invalid" // not a review: wrong method, type, size or body
)

// admissionDuration times the webhook inside this server, from the handler
// being called (after authentication and authorization) to its answer being
// written. kube-apiserver's
// apiserver_admission_webhook_admission_duration_seconds{name="workloads.rollout.kruise.io"}
// times the same calls as the caller sees them; the difference is the
// connection, the server's filters and waiting for a CPU.
var admissionDuration = k8smetrics.NewHistogramVec(&k8smetrics.HistogramOpts{
	Subsystem: "rollout_webhook",
	Name:      "admission_duration_seconds",
	Help: "Time the workload webhook took to answer a review once the request reached it (after authentication and authorization), " +
		"by result (allowed, held, denied, invalid).",
	Buckets:        []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	StabilityLevel: k8smetrics.ALPHA,
}, []string{"result"})

var registerOnce sync.Once

func registerMetrics() {
	registerOnce.Do(func() { legacyregistry.MustRegister(admissionDuration) })
}

// resultOf names what a response did, for admissionDuration.
func resultOf(response *admissionv1.AdmissionResponse) string {
	switch {
	case !response.Allowed:
		return resultDenied
	case len(response.Patch) > 0:
		return resultHeld
	}
	return resultAllowed
}
