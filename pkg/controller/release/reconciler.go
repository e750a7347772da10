// Package release is the step state machine of a release. It decides, from
// the Rollout's status and what the workload looks like now, which step the
// release is at and what happens next; it leaves how a workload kind moves
// pods to the workload.Releaser of that kind, and traffic and metric checks to
// a TrafficRouter and an Analyzer.
//
// # Record, then act
//
// Every reconcile (a pass) starts from observed state and writes status once,
// with the resourceVersion it read, so a pass that raced with another writer
// fails as a whole and is retried. The invariant that makes this safe:
//
//	A pass acts outside the Rollout (scales pods, writes the workload's
//	template or hold, moves traffic, queries metrics) only for a state that
//	the status it read already records. A decision that needs a new action
//	(entering a step, a step state with side effects, an abort and its reason,
//	a finalisation stage, a teardown) is written to status first; the action
//	happens in a later pass that reads that record.
//
// So a pass whose status write fails (a 409, a dropped response, a crash)
// has changed nothing outside status that status does not already say: the
// workload is never ahead of the step status records, an abort's reason is
// written before anything is rolled back, and every action is idempotent, so
// a pass that repeats one after a lost write converges. Status may lead the
// workload by the one step or stage being entered, never lag it.
//
// User actions follow the same rule: a promote, abort or pause waiting in
// status.pendingAction is applied in a status write that also clears it, so
// it takes effect exactly once. That write holds nothing else, except after a
// promote: the pass goes on from the promoted status, and the step it enters
// is recorded in the same write. As in any pass, it acts only as far as the
// status it read already records. Aborts decided by the
// controller (a progress deadline, a failed metric check) take the same path
// as a user's abort: status.abort is recorded, then a later pass rolls back.
package release

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// waitPoll is how soon a release that waits on its workload looks again even
// without an event: availability after minReadySeconds has no event of its own.
const waitPoll = 5 * time.Second

// Store reads Rollouts for the reconciler.
type Store interface {
	// Get returns the Rollout, or an error for which apierrors.IsNotFound is true.
	Get(namespace, name string) (*v1beta1.Rollout, error)
	// Referencing returns the Rollouts that may reference a workload
	// (workload.RolloutLookup).
	Referencing(namespace, kind, name string) ([]*v1beta1.Rollout, error)
	// Written is told about every Rollout the reconciler wrote, so that the
	// next Get returns it even before the informer has delivered it.
	Written(ro *v1beta1.Rollout)
	// Settled is told about a status write that needs no reconcile when its
	// watch event arrives: the Sync that wrote it acted on what it recorded,
	// or asked to be requeued. A thousand releases write tens of thousands
	// of statuses; reconciling each one's echo kept the workers busy for
	// nothing.
	Settled(ro *v1beta1.Rollout)
}

// ReleaserFunc picks the releaser for a Rollout's workload.
type ReleaserFunc func(ro *v1beta1.Rollout) (workload.Releaser, error)

// Reconciler runs the step machine for one Rollout at a time.
type Reconciler struct {
	// Client writes Rollouts (status, finalizers).
	Client versioned.Interface
	// Kube writes workload labels in the host cluster.
	Kube kubernetes.Interface
	// Store reads Rollouts.
	Store Store
	// Releasers picks the workload mechanics.
	Releasers ReleaserFunc
	// Router and Analyzer gate the traffic and metric states.
	Router   TrafficRouter
	Analyzer Analyzer
	// Recorder records an Event on every transition.
	Recorder record.EventRecorder
	// Clock tells the time.
	Clock clock.PassiveClock
	// Expectations are forgotten when a Rollout goes away.
	Expectations *workload.Expectations
	// Observer, if set, is told about reconciles and status writes.
	Observer Observer

	// ObservationInterval spaces out status writes that only report pod
	// counts (DefaultObservationInterval); 0 writes every change.
	ObservationInterval time.Duration

	// lastWrites remembers when each Rollout's status was last written, to
	// space out writes that only report pod counts.
	lastWrites lastWrites
}

// pass is one reconcile of one Rollout.
type pass struct {
	stored *v1beta1.Rollout       // as read and stored; what status and spec writes start from
	ro     *v1beta1.Rollout       // releaseView(stored); never modified; ro.Status is the record a pass may act on
	status *v1beta1.RolloutStatus // being built
	now    metav1.Time
	rel    workload.Releaser
	info   *workload.Info
	// requeue is the earliest time to look again, 0 for none.
	requeue time.Duration
	// decided: the pass recorded a decision that a pass reading it acts on.
	decided bool
	// countsOnly: the status written differs from the one read only in pod
	// counts (onlyObservations); set by writeStatus.
	countsOnly bool
	events     []event
}

type event struct {
	kind, reason, message string
}

// newPass starts a pass over ro as read at now.
func newPass(ro *v1beta1.Rollout, now metav1.Time) *pass {
	p := &pass{now: now}
	p.read(ro)
	return p
}

// read makes ro, as stored, what the pass acts on; the status being built
// starts over from it.
func (p *pass) read(ro *v1beta1.Rollout) {
	p.stored, p.ro = ro, releaseView(ro)
	p.status = p.ro.Status.DeepCopy()
}

func (p *pass) after(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if p.requeue == 0 || d < p.requeue {
		p.requeue = d
	}
}

func (p *pass) event(kind, reason, format string, args ...any) {
	p.events = append(p.events, event{kind: kind, reason: reason, message: fmt.Sprintf(format, args...)})
}

// Sync reconciles the Rollout with the given namespace/name key. It returns
// how soon to reconcile again when time alone will change something (a pause
// duration, a progress deadline), and an error when it should be retried.
func (r *Reconciler) Sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, fmt.Errorf("bad queue key %q: %w", key, err)
	}
	if r.Observer != nil {
		start := r.Clock.Now()
		defer func() { r.Observer.ReconcileDone(r.Clock.Since(start)) }()
	}
	ro, err := r.Store.Get(namespace, name)
	if apierrors.IsNotFound(err) {
		r.Expectations.Forget(key)
		r.lastWrites.forget(key)
		if r.Observer != nil {
			r.Observer.Forget(namespace, name)
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading Rollout %s: %w", key, err)
	}
	p := newPass(ro, metav1.NewTime(r.Clock.Now()))

	if ro.DeletionTimestamp != nil {
		err := r.syncDeletion(ctx, p)
		return p.requeue, err
	}
	if !hasFinalizer(ro) {
		// The finalizer goes on before anything is held for this Rollout; the
		// update brings the Rollout back through the informer.
		return 0, r.addFinalizer(ctx, ro)
	}

	for chained := 0; ; chained++ {
		syncErr := r.sync(ctx, p)
		written, err := r.writeStatus(ctx, p)
		if err != nil {
			return 0, errors.Join(syncErr, err)
		}
		if syncErr != nil || written == p.stored {
			return p.requeue, syncErr
		}
		// Its echo through the informer needs no reconcile: this Sync acts on
		// what it wrote next, or requeues below.
		r.Store.Settled(written)
		if !p.decided && p.countsOnly {
			// Pod counts only: nothing for a pass to act on.
			return p.requeue, nil
		}
		if chained == maxChainedPasses {
			// Something is recorded and not acted on yet.
			p.after(time.Millisecond)
			return p.requeue, nil
		}
		// What the pass recorded is stored now (a decision, or any change
		// beyond pod counts, which a later pass may act on: an applied
		// promote, an abort, a new phase): act on it at once, from the Rollout
		// the API server returned, instead of waiting for the write's watch
		// event to come back through the queue. This is still record, then
		// act: the next pass reads exactly what was written.
		p = newPass(written, metav1.NewTime(r.Clock.Now()))
	}
}

// maxChainedPasses bounds how many passes one Sync runs back to back after
// recording decisions (entering a step, then a state with side effects).
const maxChainedPasses = 4

func (r *Reconciler) sync(ctx context.Context, p *pass) error {
	ro, st := p.ro, p.status
	st.ObservedGeneration = ro.Generation
	if st.PendingAction != nil && !r.applyPendingAction(p) {
		// Applied alone: nothing else happens in the write that clears it.
		return nil
	}
	if ro.Spec.Disabled {
		return r.syncDisabled(ctx, p)
	}
	if other, err := r.conflicting(ro); err != nil {
		return err
	} else if other != "" {
		r.notActing(p, fmt.Sprintf("%s %s is already released by Rollout %s; this Rollout does nothing", ro.Spec.WorkloadRef.Kind, ro.Spec.WorkloadRef.Name, other))
		return nil
	}
	rel, err := r.Releasers(ro)
	if err != nil {
		r.notActing(p, err.Error())
		return nil
	}
	info, err := rel.Observe(ctx, ro)
	if errors.Is(err, workload.ErrNotFound) {
		r.workloadMissing(p)
		return nil
	}
	if err != nil {
		return err
	}
	p.rel, p.info = rel, info
	if err := r.ensureControlLabel(ctx, ro, info); err != nil {
		return err
	}
	switch st.Phase {
	case v1beta1.RolloutPhaseProgressing:
		return r.syncProgressing(ctx, p)
	case v1beta1.RolloutPhaseAborted:
		return r.syncAborted(ctx, p)
	}
	return r.syncIdle(ctx, p)
}

// notActing records why the Rollout does nothing.
func (r *Reconciler) notActing(p *pass, message string) {
	if p.status.Phase == "" {
		p.status.Phase = v1beta1.RolloutPhaseInitial
	}
	if p.status.Message != message {
		p.event(corev1.EventTypeWarning, "NotReleasing", "%s", message)
	}
	p.status.Message = message
}

func (r *Reconciler) workloadMissing(p *pass) {
	ref := p.ro.Spec.WorkloadRef
	message := fmt.Sprintf("%s %s not found; waiting for it", ref.Kind, ref.Name)
	if p.status.Phase == v1beta1.RolloutPhaseProgressing {
		setCondition(p.status, v1beta1.RolloutConditionProgressing, corev1.ConditionFalse, ReasonWorkloadNotFound,
			fmt.Sprintf("%s %s was deleted during the release", ref.Kind, ref.Name), p.now)
		p.event(corev1.EventTypeWarning, "WorkloadNotFound", "%s %s was deleted during the release", ref.Kind, ref.Name)
	}
	p.status.Phase = v1beta1.RolloutPhaseInitial
	p.status.Message = message
}

// conflicting names the Rollout that acts on ro's workload when that is not
// ro (workload.ActiveRollout: the oldest active one): two Rollouts holding
// one workload would fight over it.
func (r *Reconciler) conflicting(ro *v1beta1.Rollout) (string, error) {
	all, err := r.Store.Referencing(ro.Namespace, ro.Spec.WorkloadRef.Kind, ro.Spec.WorkloadRef.Name)
	if err != nil {
		return "", fmt.Errorf("listing Rollouts in %s: %w", ro.Namespace, err)
	}
	if active := workload.ActiveRollout(all, ro.Spec.WorkloadRef.Kind, ro.Spec.WorkloadRef.Name); active != nil && active.UID != ro.UID {
		return active.Name, nil
	}
	return "", nil
}

// activeReferences counts the active Rollouts other than ro that reference
// ro's workload; the workload keeps its control label while there are any.
func (r *Reconciler) activeReferences(ro *v1beta1.Rollout) (int, error) {
	all, err := r.Store.Referencing(ro.Namespace, ro.Spec.WorkloadRef.Kind, ro.Spec.WorkloadRef.Name)
	if err != nil {
		return 0, fmt.Errorf("listing Rollouts in %s: %w", ro.Namespace, err)
	}
	n := 0
	for _, other := range all {
		if other.UID != ro.UID && workload.Active(other) && workload.References(other, ro.Spec.WorkloadRef.Kind, ro.Spec.WorkloadRef.Name) {
			n++
		}
	}
	return n, nil
}

func (r *Reconciler) ensureControlLabel(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) error {
	obj, ok := info.Object.(metav1.Object)
	if !ok || obj.GetLabels()[v1beta1.WorkloadControlLabel] == "true" {
		return nil
	}
	return workload.SetControlLabel(ctx, r.Kube, info.Kind, ro.Namespace, info.Name, true)
}

// dropControlLabel removes the control label when no other active Rollout
// references the workload, so the webhook stops seeing it.
func (r *Reconciler) dropControlLabel(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) error {
	if info == nil {
		return nil
	}
	if obj, ok := info.Object.(metav1.Object); ok {
		if _, labelled := obj.GetLabels()[v1beta1.WorkloadControlLabel]; !labelled {
			return nil
		}
	}
	if n, err := r.activeReferences(ro); err != nil || n > 0 {
		return err
	}
	return workload.SetControlLabel(ctx, r.Kube, info.Kind, ro.Namespace, info.Name, false)
}

// syncIdle handles a Rollout with no release in progress: it starts one when
// the webhook has held the workload on a new revision.
func (r *Reconciler) syncIdle(ctx context.Context, p *pass) error {
	st, info, ref := p.status, p.info, p.ro.Spec.WorkloadRef
	if !info.Consistent {
		if st.Phase == "" {
			st.Phase = v1beta1.RolloutPhaseInitial
		}
		st.Message = fmt.Sprintf("Waiting for the %s controller to observe %s %s", ref.Kind, ref.Kind, ref.Name)
		p.after(waitPoll)
		return nil
	}
	if info.Held && info.CanaryRevision != info.StableRevision && !released(st, info.CanaryRevision) {
		r.startRelease(p)
		return r.syncProgressing(ctx, p)
	}
	if info.Held {
		// Held for a change that releases nothing new (a rollout-id change,
		// or a revert before the release began).
		if _, err := p.rel.Release(ctx, p.ro, info); err != nil {
			return err
		}
		p.event(corev1.EventTypeNormal, "NothingToRelease", "%s %s runs its stable revision %s already; handed it back", ref.Kind, ref.Name, info.StableRevision)
	}
	if cs := st.CanaryStatus; cs != nil && !info.Held {
		// Kruise's tools compare this with the workload's generation: keep it
		// equal after the hand-back that ends a release and after a scale.
		cs.ObservedWorkloadGeneration = info.Generation
	}
	if st.Phase != v1beta1.RolloutPhaseHealthy {
		p.event(corev1.EventTypeNormal, "Healthy", "%s %s runs revision %s; waiting for a new revision", ref.Kind, ref.Name, info.StableRevision)
	}
	st.Phase = v1beta1.RolloutPhaseHealthy
	// No pod counts here: a message that changed with every pod would cost a
	// status write per pod event of every idle workload.
	st.Message = fmt.Sprintf("%s %s runs revision %s; waiting for a new revision", ref.Kind, ref.Name, info.StableRevision)
	return nil
}

// released reports whether the last release, of revision, succeeded. A
// workload cache that still shows the hold and the old current revision just
// after the release handed the workload back (a StatefulSet's
// status.currentRevision lags) must not start the same release again.
func released(st *v1beta1.RolloutStatus, revision string) bool {
	if st.CanaryStatus == nil || st.CanaryStatus.CanaryRevision != revision || st.Abort != nil {
		return false
	}
	c := getCondition(st, v1beta1.RolloutConditionSucceeded)
	return c != nil && c.Status == corev1.ConditionTrue
}

// startRelease begins a release of the workload's current revision at step 1.
func (r *Reconciler) startRelease(p *pass) {
	st, info, ro := p.status, p.info, p.ro
	steps := ro.Spec.Strategy.Canary.Steps
	st.Phase = v1beta1.RolloutPhaseProgressing
	st.Abort = nil
	st.AnalysisResults = nil
	removeCondition(st, v1beta1.RolloutConditionSucceeded)
	st.CanaryStatus = &v1beta1.CanaryStatus{
		CommonStatus: v1beta1.CommonStatus{
			ObservedWorkloadGeneration: info.Generation,
			ObservedRolloutID:          info.RolloutID,
			RolloutHash:                stepsHash(ro),
			StableRevision:             info.StableRevision,
			PodTemplateHash:            info.PodTemplateHash,
			CurrentStepIndex:           1,
			NextStepIndex:              nextStepIndex(1, len(steps)),
			CurrentStepState:           v1beta1.CanaryStepStateInit,
			LastUpdateTime:             &p.now,
			StepStartTime:              &p.now,
		},
		CanaryRevision: info.CanaryRevision,
	}
	message := fmt.Sprintf("Releasing revision %s of %s %s in %d steps (stable revision %s)",
		info.CanaryRevision, info.Kind, info.Name, len(steps), info.StableRevision)
	setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonInRolling, message, p.now)
	st.Message = message
	p.event(corev1.EventTypeNormal, "ReleaseStarted", "%s", message)
	klog.InfoS("Release started", "rollout", klog.KObj(ro), "canaryRevision", info.CanaryRevision, "stableRevision", info.StableRevision)
}

func (r *Reconciler) addFinalizer(ctx context.Context, ro *v1beta1.Rollout) error {
	ro = ro.DeepCopy()
	ro.Finalizers = append(ro.Finalizers, Finalizer)
	updated, err := r.Client.RolloutV1beta1().Rollouts(ro.Namespace).Update(ctx, ro, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("adding finalizer %s to Rollout %s/%s: %w", Finalizer, ro.Namespace, ro.Name, err)
	}
	r.Store.Written(updated)
	return nil
}

// writeStatus writes the status built by the pass if it changed, then
// records the pass's Events (after the write, so a write that fails and is
// retried records nothing twice).
func (r *Reconciler) writeStatus(ctx context.Context, p *pass) (*v1beta1.Rollout, error) {
	mirrorStep(p.status)
	written := p.stored
	key := p.stored.Namespace + "/" + p.stored.Name
	if !apiequality.Semantic.DeepEqual(&p.ro.Status, p.status) {
		p.countsOnly = onlyObservations(&p.ro.Status, p.status)
		if len(p.events) == 0 && p.countsOnly {
			if wait := r.lastWrites.wait(key, r.Clock.Now(), r.ObservationInterval); wait > 0 {
				// Pod counts only: written with the next change, or in wait.
				p.after(wait)
				return written, nil
			}
		}
		ro := p.stored.DeepCopy()
		ro.Status = *storedStatus(p.stored, p.status)
		updated, err := r.Client.RolloutV1beta1().Rollouts(ro.Namespace).UpdateStatus(ctx, ro, metav1.UpdateOptions{})
		if err != nil {
			return nil, fmt.Errorf("updating status of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
		}
		r.Store.Written(updated)
		r.lastWrites.wrote(key, r.Clock.Now())
		written = updated
		if r.Observer != nil {
			r.Observer.StatusWritten(p.ro, &p.ro.Status, p.status, r.Clock.Now())
		}
	}
	for _, e := range p.events {
		r.Recorder.Event(p.ro, e.kind, e.reason, e.message)
	}
	return written, nil
}
