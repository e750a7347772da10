package v1beta1

// A release keeps its progress in status.canaryStatus or, for a blue-green
// strategy, in status.blueGreenStatus. The two share CommonStatus and name
// the new revision's pods differently; readers that only show or check
// progress (the step machine, the kubectl plugin) read both through
// Progress, and the step machine writes blue-green progress back with
// BlueGreenStatusOf.

// Progress is the release progress in status in the canary shape: the
// canary status itself, or a copy of the blue-green status as one. Nil when
// status holds neither.
func (s *RolloutStatus) Progress() *CanaryStatus {
	switch {
	case s.CanaryStatus != nil:
		return s.CanaryStatus
	case s.BlueGreenStatus != nil:
		bg := s.BlueGreenStatus.DeepCopy()
		return &CanaryStatus{
			CommonStatus:        bg.CommonStatus,
			CanaryRevision:      bg.UpdatedRevision,
			CanaryReplicas:      bg.UpdatedReplicas,
			CanaryReadyReplicas: bg.UpdatedReadyReplicas,
		}
	}
	return nil
}

// BlueGreenStatusOf is progress kept in the canary shape as blue-green
// status; nil for nil.
func BlueGreenStatusOf(cs *CanaryStatus) *BlueGreenStatus {
	if cs == nil {
		return nil
	}
	cs = cs.DeepCopy()
	return &BlueGreenStatus{
		CommonStatus:         cs.CommonStatus,
		UpdatedRevision:      cs.CanaryRevision,
		UpdatedReplicas:      cs.CanaryReplicas,
		UpdatedReadyReplicas: cs.CanaryReadyReplicas,
	}
}
