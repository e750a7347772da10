package deployment

// scaleState is one ReplicaSet as the batch arithmetic sees it.
type scaleState struct {
	name string
	// spec is spec.replicas; available is status.availableReplicas; pods is
	// status.replicas, the pods that exist and are not being deleted.
	spec, available, pods int32
	// stable marks the release's stable revision among the old ReplicaSets.
	stable bool
}

// scaleStep resizes one ReplicaSet.
type scaleStep struct {
	name string
	to   int32
}

// planScale is the arithmetic of one in-place move toward a batch of target
// new pods out of replicas. It returns the resizes in the order to apply them:
// every grow before any shrink. Grows only take room that pods have really
// left (see present), so they fit under replicas + surge in any order; going
// first keeps two ReplicaSets active, where shrinking the old one while the
// new one is still empty would make the Deployment controller scale the only
// active ReplicaSet back up to the Deployment's replicas.
//
// Like the Deployment controller's rolling update it
//   - grows the new ReplicaSet as far as replicas + surge allows,
//   - shrinks old ReplicaSets toward replicas - target, removing unavailable
//     pods first (they cost no availability) and available ones only while at
//     least replicas - unavailable pods stay available,
//   - and then grows the new ReplicaSet into the room the shrink made.
//
// Old revisions other than the stable one (a release restarted for a newer
// revision leaves some) are shrunk before the stable one. It stops at the
// batch: old ReplicaSets keep replicas - target pods.
func planScale(replicas, surge, unavailable, target int32, current scaleState, olds []scaleState) []scaleStep {
	newSpec := current.spec
	oldSpec := make([]int32, len(olds))
	for i, o := range olds {
		oldSpec[i] = o.spec
	}
	total := func() int32 {
		t := newSpec
		for _, s := range oldSpec {
			t += s
		}
		return t
	}
	// present counts, per ReplicaSet, the larger of what it should have and
	// what it still has: a shrink frees room only once the ReplicaSet
	// controller has marked the old pods for deletion, so growing into that
	// room waits for a later pass instead of overshooting replicas + surge.
	present := func() int32 {
		t := max(newSpec, current.pods)
		for i, s := range oldSpec {
			t += max(s, olds[i].pods)
		}
		return t
	}
	// Shrink order: intermediate revisions first, the stable one last.
	order := make([]int, 0, len(olds))
	stableIndex := -1
	for i, o := range olds {
		if o.stable {
			stableIndex = i
			continue
		}
		order = append(order, i)
	}
	if stableIndex >= 0 {
		order = append(order, stableIndex)
	}

	// More new pods than the batch wants happens only when the plan changed
	// under a running release (fewer replicas or smaller steps).
	newSpec = min(newSpec, target)
	grow := func() {
		if room := replicas + surge - present(); newSpec < target && room > 0 {
			newSpec += min(target-newSpec, room)
		}
	}
	grow()

	var oldTotal int32
	for _, s := range oldSpec {
		oldTotal += s
	}
	excess := oldTotal - (replicas - target)
	switch {
	case excess > 0:
		minAvailable := replicas - unavailable
		newUnavailable := max(newSpec-current.available, 0)
		budget := total() - minAvailable - newUnavailable
		for _, i := range order {
			if excess <= 0 || budget <= 0 {
				break
			}
			unhealthy := oldSpec[i] - min(olds[i].available, oldSpec[i])
			cut := min(unhealthy, excess, budget)
			oldSpec[i] -= cut
			excess -= cut
			budget -= cut
		}
		available := min(current.available, newSpec)
		for i := range olds {
			available += min(olds[i].available, oldSpec[i])
		}
		budget = available - minAvailable
		for _, i := range order {
			if excess <= 0 || budget <= 0 {
				break
			}
			cut := min(oldSpec[i], excess, budget)
			oldSpec[i] -= cut
			excess -= cut
			budget -= cut
		}
		grow()
		keepLastOldPod(replicas, newSpec, oldSpec, olds, order)
	case excess < 0 && len(olds) > 0:
		// The old revisions are short of replicas - target, as after the
		// Deployment was scaled up: grow the stable one within the surge.
		i := stableIndex
		if i < 0 {
			i = len(olds) - 1
		}
		if room := replicas + surge - present(); room > 0 {
			oldSpec[i] += min(-excess, room)
		}
	}

	var shrinks, grows []scaleStep
	if newSpec < current.spec {
		shrinks = append(shrinks, scaleStep{name: current.name, to: newSpec})
	} else if newSpec > current.spec {
		grows = append(grows, scaleStep{name: current.name, to: newSpec})
	}
	for i, o := range olds {
		switch {
		case oldSpec[i] < o.spec:
			shrinks = append(shrinks, scaleStep{name: o.name, to: oldSpec[i]})
		case oldSpec[i] > o.spec:
			grows = append(grows, scaleStep{name: o.name, to: oldSpec[i]})
		}
	}
	return append(grows, shrinks...)
}

// keepLastOldPod leaves one old pod while the new ReplicaSet is short of the
// Deployment's replicas. With no old pod left, the new ReplicaSet is the only
// active one, and the Deployment controller scales the only active
// ReplicaSet of even a paused Deployment straight up to its replicas, past
// the surge. The last old pod goes in the pass that completes the new one,
// after it (grows are applied first).
func keepLastOldPod(replicas, newSpec int32, oldSpec []int32, olds []scaleState, order []int) {
	if newSpec >= replicas {
		return
	}
	var left, had int32
	for i := range olds {
		left += oldSpec[i]
		had += olds[i].spec
	}
	if left > 0 || had == 0 {
		return
	}
	// The stable revision is last in the shrink order: it keeps the pod.
	oldSpec[order[len(order)-1]] = 1
}
