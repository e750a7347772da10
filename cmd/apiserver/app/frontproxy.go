package app

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapiserver "k8s.io/apiserver/pkg/server"
)

// Trusting the front proxy's authorization (--trust-front-proxy-authorization).
//
// A request the aggregator proxies was authenticated and authorized by
// kube-apiserver, with the same verb, resource, namespace and name, before it
// was forwarded; delegated authorization then asks kube-apiserver the same
// question again with a SubjectAccessReview. Its cache is keyed by every
// attribute, the object's name included, so a client reading many objects
// pays one review (a round trip to kube-apiserver and its RBAC evaluation)
// per object. With the option on, requests authenticated by the front-proxy
// client certificate are allowed without that review; everything else (a
// direct caller with a cluster certificate or a token, the webhook's caller,
// an impersonated identity) is authorized exactly as before.
//
// It grants a front-proxy certificate holder nothing new: that certificate
// already lets its holder name any user and group in the request headers.

// frontProxyMark is put into every request's context before authentication;
// the front-proxy authenticator records in it the identity it authenticated.
type frontProxyMark struct {
	mu   sync.Mutex
	user user.Info
}

type frontProxyMarkKey struct{}

func (m *frontProxyMark) set(u user.Info) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.user = u
}

func (m *frontProxyMark) get() user.Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.user
}

// withFrontProxyMark gives each request an empty mark.
func withFrontProxyMark(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), frontProxyMarkKey{}, &frontProxyMark{})))
	})
}

// frontProxyAuthenticator tries the front-proxy (request header)
// authenticator first and marks the request when it succeeds; otherwise the
// server's usual authenticators decide.
type frontProxyAuthenticator struct {
	frontProxy authenticator.Request
	rest       authenticator.Request
}

// AuthenticateRequest implements authenticator.Request.
func (a frontProxyAuthenticator) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	if mark, ok := req.Context().Value(frontProxyMarkKey{}).(*frontProxyMark); ok {
		resp, ok, err := a.frontProxy.AuthenticateRequest(req)
		if ok && err == nil && resp != nil && resp.User != nil {
			mark.set(resp.User)
			return resp, true, nil
		}
	}
	return a.rest.AuthenticateRequest(req)
}

// frontProxyAuthorizer allows what the front proxy authenticated and so
// authorized already, and asks the delegate about everything else.
type frontProxyAuthorizer struct {
	delegate authorizer.Authorizer
}

// Authorize implements authorizer.Authorizer.
func (a frontProxyAuthorizer) Authorize(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	if trustedFromFrontProxy(ctx, attrs) {
		return authorizer.DecisionAllow, "authorized by the front proxy (kube-apiserver) before it forwarded the request", nil
	}
	return a.delegate.Authorize(ctx, attrs)
}

// ConditionsAwareAuthorize implements authorizer.Authorizer: the same
// decision as Authorize for a trusted request, the delegate's otherwise.
func (a frontProxyAuthorizer) ConditionsAwareAuthorize(ctx context.Context, attrs authorizer.Attributes) authorizer.ConditionsAwareDecision {
	if trustedFromFrontProxy(ctx, attrs) {
		return authorizer.ConditionsAwareDecisionFromParts(authorizer.DecisionAllow, "authorized by the front proxy (kube-apiserver) before it forwarded the request", nil)
	}
	return a.delegate.ConditionsAwareAuthorize(ctx, attrs)
}

// EvaluateConditions implements authorizer.Authorizer: conditional
// decisions come only from the delegate, which evaluates them.
func (a frontProxyAuthorizer) EvaluateConditions(ctx context.Context, decision authorizer.ConditionsAwareDecision, data authorizer.ConditionsData) (authorizer.Decision, string, error) {
	return a.delegate.EvaluateConditions(ctx, decision, data)
}

// trustedFromFrontProxy: the front-proxy authenticator authenticated this
// request and the identity being authorized is the one it named. After an
// impersonation (headers kube-apiserver would have consumed itself) the
// identity differs and the request is authorized as usual; so is the
// impersonation check itself.
func trustedFromFrontProxy(ctx context.Context, attrs authorizer.Attributes) bool {
	mark, ok := ctx.Value(frontProxyMarkKey{}).(*frontProxyMark)
	if !ok || attrs.GetVerb() == "impersonate" {
		return false
	}
	marked := mark.get()
	return marked != nil && attrs.GetUser() == marked
}

// trustFrontProxyAuthorization changes cfg so that requests authenticated by
// the front-proxy certificate skip delegated authorization (see above).
func trustFrontProxyAuthorization(cfg *genericapiserver.RecommendedConfig) error {
	rh := cfg.Authentication.RequestHeaderConfig
	if rh == nil || rh.CAContentProvider == nil {
		return fmt.Errorf("--trust-front-proxy-authorization needs the front-proxy CA (requestheader-client-ca-file, or delegated authentication reading it from the cluster)")
	}
	if cfg.Authentication.Authenticator == nil || cfg.Authorization.Authorizer == nil {
		return fmt.Errorf("--trust-front-proxy-authorization needs delegated authentication and authorization")
	}
	// The same authenticator the delegated configuration puts first.
	frontProxy := headerrequest.NewDynamicVerifyOptionsSecure(rh.CAContentProvider.VerifyOptions,
		rh.AllowedClientNames, rh.UsernameHeaders, rh.UIDHeaders, rh.GroupHeaders, rh.ExtraHeaderPrefixes)
	cfg.Authentication.Authenticator = frontProxyAuthenticator{frontProxy: frontProxy, rest: cfg.Authentication.Authenticator}
	cfg.Authorization.Authorizer = frontProxyAuthorizer{delegate: cfg.Authorization.Authorizer}
	build := cfg.BuildHandlerChainFunc
	cfg.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		return withFrontProxyMark(build(h, c))
	}
	return nil
}
