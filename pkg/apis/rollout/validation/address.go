package validation

import (
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// AddressPolicy is the operator's say over where metric checks may connect:
// the controller queries a check's address from inside the cluster and copies
// what it answers into status, so an address chosen by whoever may edit a
// Rollout alone would be a server-side request forgery path. The registry
// enforces it at admission and the controller again before every query, so a
// policy tightened after a Rollout was admitted still holds.
type AddressPolicy struct {
	// Default is the Prometheus address of a check that names none; empty
	// means such checks are refused.
	Default string
	// Allowed lists the addresses a check may name. An entry with a scheme
	// ("http://prometheus.monitoring:9090") allows that scheme, host and port;
	// an entry without one is a host pattern: "prometheus.monitoring" allows
	// that host on any port, "*.monitoring.svc" any host under that domain.
	// Empty allows every address (and the default).
	Allowed []string
}

// ParseAddressPolicy checks the server flags that make an AddressPolicy.
func ParseAddressPolicy(defaultAddress string, allowed []string) (AddressPolicy, error) {
	p := AddressPolicy{Default: defaultAddress}
	if defaultAddress != "" {
		if msg := validateHTTPURL(defaultAddress); msg != "" {
			return AddressPolicy{}, fmt.Errorf("default Prometheus address %q %s", defaultAddress, msg)
		}
	}
	for _, a := range allowed {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if strings.Contains(a, "://") {
			if msg := validateHTTPURL(a); msg != "" {
				return AddressPolicy{}, fmt.Errorf("allowed Prometheus address %q %s", a, msg)
			}
		} else if strings.ContainsAny(strings.TrimPrefix(a, "*."), "*/:@") {
			return AddressPolicy{}, fmt.Errorf("allowed Prometheus host pattern %q must be a host name, optionally starting with \"*.\"", a)
		}
		p.Allowed = append(p.Allowed, strings.ToLower(a))
	}
	return p, nil
}

// Resolve returns the address a check queries: its own, or the default.
func (p AddressPolicy) Resolve(address string) string {
	if address == "" {
		return p.Default
	}
	return address
}

// Allows reports whether a check may query address; the default address is
// always allowed, since the operator chose it.
func (p AddressPolicy) Allows(address string) bool {
	if len(p.Allowed) == 0 || (address != "" && address == p.Default) {
		return true
	}
	u, err := url.Parse(address)
	if err != nil || u.Hostname() == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, a := range p.Allowed {
		switch {
		case strings.Contains(a, "://"):
			allowed, err := url.Parse(a)
			if err == nil && strings.EqualFold(allowed.Scheme, u.Scheme) && strings.EqualFold(allowed.Host, u.Host) {
				return true
			}
		case strings.HasPrefix(a, "*."):
			if strings.HasSuffix(host, a[1:]) {
				return true
			}
		case host == a:
			return true
		}
	}
	return false
}

// ValidateAddresses checks every metric check of a Rollout against the
// policy: a check without an address needs a default, and a named address
// must be allowed.
func (p AddressPolicy) ValidateAddresses(s *rollout.RolloutStrategy, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	check := func(a *rollout.RolloutAnalysis, path *field.Path) {
		if a == nil {
			return
		}
		for i := range a.Metrics {
			prom := a.Metrics[i].Provider.Prometheus
			if prom == nil {
				continue
			}
			addrPath := path.Child("metrics").Index(i).Child("provider", "prometheus", "address")
			switch {
			case prom.Address == "" && p.Default == "":
				allErrs = append(allErrs, field.Required(addrPath, "the server has no default Prometheus address (--metrics-default-prometheus-address)"))
			case prom.Address != "" && !p.Allows(prom.Address):
				allErrs = append(allErrs, field.Forbidden(addrPath, fmt.Sprintf("%q is not among the Prometheus addresses this server allows (%s)",
					prom.Address, strings.Join(p.Allowed, ", "))))
			}
		}
	}
	if c := s.Canary; c != nil {
		path := fldPath.Child("canary")
		check(c.Analysis, path.Child("analysis"))
		for i := range c.Steps {
			check(c.Steps[i].Analysis, path.Child("steps").Index(i).Child("analysis"))
		}
	}
	if b := s.BlueGreen; b != nil {
		path := fldPath.Child("blueGreen")
		check(b.Analysis, path.Child("analysis"))
		for i := range b.Steps {
			check(b.Steps[i].Analysis, path.Child("steps").Index(i).Child("analysis"))
		}
	}
	return allErrs
}
