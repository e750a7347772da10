package main

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// explain turns an API error into a message that says what to do. A 403 names the verb and
// the (sub)resource the user lacks, and the role that grants it; a 409 or 422 carries the
// server's own message (it says why the Rollout refused, e.g. no release in progress).
func explain(err error, verb, resource, ns, name string) error {
	if err == nil {
		return nil
	}
	what := resource
	if name != "" {
		what += " " + name
	}
	where := ""
	if ns != "" {
		where = " in namespace " + ns
	}
	var status apierrors.APIStatus
	msg := err.Error()
	if errors.As(err, &status) && status.Status().Message != "" {
		msg = status.Status().Message
	}
	return &explained{msg: explainText(err, msg, verb, resource, what, where, ns), err: err}
}

// explained is an API error with a message for people; Unwrap keeps the API status (the
// dashboard answers with its code).
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

func explainText(err error, msg, verb, resource, what, where, ns string) string {
	switch {
	case apierrors.IsForbidden(err):
		hint := ""
		if strings.HasPrefix(resource, "rollouts/") {
			hint = fmt.Sprintf("; the role rollout-promoter (or rollout-editor) grants it: kubectl create rolebinding NAME --clusterrole=rollout-promoter --user=USER -n %s", nsOr(ns))
		} else if strings.HasPrefix(resource, "rollouts") {
			hint = "; the role rollout-viewer grants read access to rollouts"
		}
		return fmt.Sprintf("forbidden: you may not %s %s%s (RBAC verb %q on resource %q in API group %q)%s\nserver: %s",
			verb, what, where, verb, resource, groupOf(resource), hint, msg)
	case apierrors.IsConflict(err):
		return fmt.Sprintf("conflict: %s %s%s was refused: %s", verb, what, where, msg)
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("not found: %s%s (%s)", what, where, msg)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return fmt.Sprintf("%s %s%s was rejected: %s", verb, what, where, msg)
	}
	return fmt.Sprintf("%s %s%s: %v", verb, what, where, err)
}

// groupOf is the API group of the resources the plugin reads.
func groupOf(resource string) string {
	switch strings.SplitN(resource, "/", 2)[0] {
	case "rollouts":
		return "rollout.kruise.io"
	case "pods", "events":
		return ""
	}
	return "apps"
}

func nsOr(ns string) string {
	if ns == "" {
		return "NAMESPACE"
	}
	return ns
}
