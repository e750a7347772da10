package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// fixedAuthenticator answers every request with user (or fails without one).
type fixedAuthenticator struct{ user user.Info }

func (f fixedAuthenticator) AuthenticateRequest(*http.Request) (*authenticator.Response, bool, error) {
	if f.user == nil {
		return nil, false, nil
	}
	return &authenticator.Response{User: f.user}, true, nil
}

// denyAll denies everything and counts the questions.
func denyAll(asked *int) authorizer.Authorizer {
	return authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
		*asked++
		return authorizer.DecisionDeny, "denied by the delegate", nil
	})
}

// TestFrontProxyTrust: only the identity the front-proxy authenticator
// authenticated is allowed without the delegate; direct callers,
// impersonated identities and the impersonation check itself go to the
// delegate (here: denied).
func TestFrontProxyTrust(t *testing.T) {
	proxied := &user.DefaultInfo{Name: "alice", Groups: []string{"dev"}}
	direct := &user.DefaultInfo{Name: "mallory"}
	impersonated := &user.DefaultInfo{Name: "alice", Groups: []string{"dev"}} // equal fields, another identity
	for _, tc := range []struct {
		name       string
		frontProxy user.Info // what the front-proxy authenticator finds, nil: not a front-proxy request
		authorize  func(authenticated user.Info) user.Info
		verb       string
		wantAllow  bool
	}{
		{name: "front-proxy request is trusted", frontProxy: proxied, authorize: func(u user.Info) user.Info { return u }, verb: "get", wantAllow: true},
		{name: "direct caller goes to the delegate", authorize: func(u user.Info) user.Info { return u }, verb: "get"},
		{name: "impersonated identity goes to the delegate", frontProxy: proxied, authorize: func(user.Info) user.Info { return impersonated }, verb: "get"},
		{name: "the impersonation check goes to the delegate", frontProxy: proxied, authorize: func(u user.Info) user.Info { return u }, verb: "impersonate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := 0
			authn := frontProxyAuthenticator{frontProxy: fixedAuthenticator{tc.frontProxy}, rest: fixedAuthenticator{direct}}
			authz := frontProxyAuthorizer{delegate: denyAll(&asked)}
			var decision authorizer.Decision
			handler := withFrontProxyMark(http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
				resp, ok, err := authn.AuthenticateRequest(req)
				require.NoError(t, err)
				require.True(t, ok)
				if tc.frontProxy == nil {
					assert.Same(t, direct, resp.User, "the other authenticators decide")
				}
				attrs := authorizer.AttributesRecord{User: tc.authorize(resp.User), Verb: tc.verb, Resource: "rollouts", Name: "web", ResourceRequest: true}
				decision, _, err = authz.Authorize(req.Context(), attrs)
				require.NoError(t, err)
			}))
			handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/apis/rollout.kruise.io/v1beta1/rollouts", nil))
			if tc.wantAllow {
				assert.Equal(t, authorizer.DecisionAllow, decision)
				assert.Zero(t, asked, "no SubjectAccessReview for a front-proxy request")
			} else {
				assert.Equal(t, authorizer.DecisionDeny, decision)
				assert.Equal(t, 1, asked)
			}
		})
	}
}

// TestFrontProxyTrustWithoutMark: a context without the mark (a request
// that did not pass the handler chain's filter) is never trusted.
func TestFrontProxyTrustWithoutMark(t *testing.T) {
	asked := 0
	authz := frontProxyAuthorizer{delegate: denyAll(&asked)}
	d, _, err := authz.Authorize(context.Background(), authorizer.AttributesRecord{User: &user.DefaultInfo{Name: "x"}, Verb: "get"})
	require.NoError(t, err)
	assert.Equal(t, authorizer.DecisionDeny, d)
	assert.Equal(t, 1, asked)
}
