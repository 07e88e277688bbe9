package kubeletsim

import corev1 "k8s.io/api/core/v1"

// AdmittedAndCached returns the object a node's admission counts for the
// pod at key, and the pod informer's object for it.
func (s *Simulator) AdmittedAndCached(node, key string) (admitted, cached *corev1.Pod) {
	if n := s.node(node); n != nil {
		n.mu.Lock()
		admitted = n.admitted[key]
		n.mu.Unlock()
	}
	if obj, ok, _ := s.podInformer.GetIndexer().GetByKey(key); ok {
		cached = obj.(*corev1.Pod)
	}
	return admitted, cached
}

// FaultOf is the fault the simulated node has seen on its Node.
func (s *Simulator) FaultOf(node string) Fault {
	n := s.node(node)
	if n == nil {
		return FaultNone
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fault
}
