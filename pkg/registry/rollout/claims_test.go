package rollout

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// Every reference that validation accepts names one claim key under the
// claims prefix; a reference that could escape it names none.
func TestClaimKey(t *testing.T) {
	web := rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindDeployment, Name: "web"}
	cases := []struct {
		name      string
		namespace string
		ref       rollout.ObjectRef
		want      string
	}{
		{"deployment", "default", web, ClaimsResourcePrefix + "/default/Deployment/web"},
		{"statefulset", "team-a", rollout.ObjectRef{Kind: rollout.KindStatefulSet, Name: "db"}, ClaimsResourcePrefix + "/team-a/StatefulSet/db"},
		{"no namespace", "", web, ""},
		{"no name", "default", rollout.ObjectRef{Kind: rollout.KindDeployment}, ""},
		{"no kind", "default", rollout.ObjectRef{Name: "web"}, ""},
		{"slash in name", "default", rollout.ObjectRef{Kind: rollout.KindDeployment, Name: "a/b"}, ""},
		{"dot-dot name", "default", rollout.ObjectRef{Kind: rollout.KindDeployment, Name: ".."}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := claimKey(tc.namespace, tc.ref)
			assert.Equal(t, tc.want != "", ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSameWorkload(t *testing.T) {
	web := rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindDeployment, Name: "web"}
	cases := []struct {
		name string
		b    rollout.ObjectRef
		want bool
	}{
		{"identical", web, true},
		{"other apiVersion", rollout.ObjectRef{APIVersion: "apps/v1beta1", Kind: rollout.KindDeployment, Name: "web"}, true},
		{"other kind", rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindStatefulSet, Name: "web"}, false},
		{"other name", rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindDeployment, Name: "api"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, sameWorkload(web, tc.b))
		})
	}
}
