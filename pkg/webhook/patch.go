package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// patchOp is one RFC 6902 operation. "add" sets a member whether or not it
// exists, so it serves both for fields that are absent and present.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// workloadUpdate is an update of one workload kind.
type workloadUpdate interface {
	// meta is the new object's metadata.
	meta() metav1.Object
	// triggers reports whether the update concerns the hold: it changes the
	// pod template or rollout-id, or touches a workload that is held.
	triggers() bool
	// hold returns the patch that holds the new object; empty if it is held already.
	hold() ([]patchOp, error)
}

func decode(req *admissionv1.AdmissionRequest) (workloadUpdate, error) {
	if len(req.Object.Raw) == 0 || len(req.OldObject.Raw) == 0 {
		return nil, errors.New("an update review must carry the object and the old object")
	}
	switch req.Kind.Kind {
	case v1beta1.KindDeployment:
		u := &deploymentUpdate{}
		return u, decodePair(req, &u.old, &u.new)
	case v1beta1.KindStatefulSet:
		u := &statefulSetUpdate{}
		return u, decodePair(req, &u.old, &u.new)
	case v1beta1.KindDaemonSet:
		u := &daemonSetUpdate{}
		return u, decodePair(req, &u.old, &u.new)
	}
	return nil, fmt.Errorf("unsupported kind %q", req.Kind.Kind)
}

func decodePair(req *admissionv1.AdmissionRequest, oldObj, newObj any) error {
	if err := json.Unmarshal(req.Object.Raw, newObj); err != nil {
		return fmt.Errorf("decoding the %s: %w", req.Kind.Kind, err)
	}
	if err := json.Unmarshal(req.OldObject.Raw, oldObj); err != nil {
		return fmt.Errorf("decoding the old %s: %w", req.Kind.Kind, err)
	}
	return nil
}

// escape makes a map key one JSON pointer token (RFC 6901).
func escape(token string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}

// annotationOps writes the hold annotation of held into the request's object.
func annotationOps(request, held metav1.Object) []patchOp {
	value, ok := held.GetAnnotations()[workload.HoldAnnotation]
	if current, had := request.GetAnnotations()[workload.HoldAnnotation]; !ok || (had && current == value) {
		return nil
	}
	if len(request.GetAnnotations()) == 0 {
		return []patchOp{{Op: "add", Path: "/metadata/annotations", Value: map[string]string{workload.HoldAnnotation: value}}}
	}
	return []patchOp{{Op: "add", Path: "/metadata/annotations/" + escape(workload.HoldAnnotation), Value: value}}
}

type deploymentUpdate struct {
	old, new appsv1.Deployment
}

func (u *deploymentUpdate) meta() metav1.Object { return &u.new }

func (u *deploymentUpdate) triggers() bool {
	return templateOrIDChanged(&u.old, &u.new, &u.old.Spec.Template, &u.new.Spec.Template) || heldHere(&u.new)
}

func (u *deploymentUpdate) hold() ([]patchOp, error) {
	held := u.new.DeepCopy()
	changed, err := workload.HoldDeployment(&u.old, held)
	if err != nil || !changed {
		return nil, err
	}
	var ops []patchOp
	if held.Spec.Paused != u.new.Spec.Paused {
		ops = append(ops, patchOp{Op: "add", Path: "/spec/paused", Value: held.Spec.Paused})
	}
	if !apiequality.Semantic.DeepEqual(held.Spec.Strategy, u.new.Spec.Strategy) {
		ops = append(ops, patchOp{Op: "add", Path: "/spec/strategy", Value: held.Spec.Strategy})
	}
	if !apiequality.Semantic.DeepEqual(held.Spec.RevisionHistoryLimit, u.new.Spec.RevisionHistoryLimit) {
		ops = append(ops, patchOp{Op: "add", Path: "/spec/revisionHistoryLimit", Value: held.Spec.RevisionHistoryLimit})
	}
	return append(ops, annotationOps(&u.new, held)...), nil
}

type statefulSetUpdate struct {
	old, new appsv1.StatefulSet
}

func (u *statefulSetUpdate) meta() metav1.Object { return &u.new }

func (u *statefulSetUpdate) triggers() bool {
	return templateOrIDChanged(&u.old, &u.new, &u.old.Spec.Template, &u.new.Spec.Template) || heldHere(&u.new)
}

func (u *statefulSetUpdate) hold() ([]patchOp, error) {
	held := u.new.DeepCopy()
	restart := templateOrIDChanged(&u.old, &u.new, &u.old.Spec.Template, &u.new.Spec.Template)
	changed, err := workload.HoldStatefulSet(&u.old, held, restart)
	if err != nil || !changed {
		return nil, err
	}
	var ops []patchOp
	if !apiequality.Semantic.DeepEqual(held.Spec.UpdateStrategy, u.new.Spec.UpdateStrategy) {
		ops = append(ops, patchOp{Op: "add", Path: "/spec/updateStrategy", Value: held.Spec.UpdateStrategy})
	}
	return append(ops, annotationOps(&u.new, held)...), nil
}

type daemonSetUpdate struct {
	old, new appsv1.DaemonSet
}

func (u *daemonSetUpdate) meta() metav1.Object { return &u.new }

func (u *daemonSetUpdate) triggers() bool {
	return templateOrIDChanged(&u.old, &u.new, &u.old.Spec.Template, &u.new.Spec.Template) || heldHere(&u.new)
}

func (u *daemonSetUpdate) hold() ([]patchOp, error) {
	held := u.new.DeepCopy()
	changed, err := workload.HoldDaemonSet(&u.old, held)
	if err != nil || !changed {
		return nil, err
	}
	var ops []patchOp
	if !apiequality.Semantic.DeepEqual(held.Spec.UpdateStrategy, u.new.Spec.UpdateStrategy) {
		ops = append(ops, patchOp{Op: "add", Path: "/spec/updateStrategy", Value: held.Spec.UpdateStrategy})
	}
	return append(ops, annotationOps(&u.new, held)...), nil
}
