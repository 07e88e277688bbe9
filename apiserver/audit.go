package apiserver

import (
	"errors"
	"fmt"

	"k8s.io/apiserver/pkg/audit"
	genericserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
)

// auditing is the server's audit: kube-apiserver's policy evaluator and
// backends, built from its options (k8s.io/apiserver/pkg/server/options),
// so that the --audit-* flags, their defaults, validation and the events
// they write are kube-apiserver's own.
type auditing struct {
	evaluator audit.PolicyRuleEvaluator // nil: no audit
	backend   audit.Backend             // nil: no audit
	stop      chan struct{}
}

// newAuditing builds the audit of cfg: none without a policy file, as
// kube-apiserver records no events without --audit-policy-file.
func newAuditing(cfg Config) (*auditing, error) {
	a := &auditing{stop: make(chan struct{})}
	o := cfg.Audit
	if o == nil {
		if cfg.AuditBackend != nil {
			return nil, errors.New("an audit backend needs an audit policy file (Audit.PolicyFile)")
		}
		return a, nil
	}
	if errs := o.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid audit options: %w", errors.Join(errs...))
	}
	// A log path or webhook without a policy file records nothing, as in
	// kube-apiserver (which only logs so); a backend given here is a
	// caller's mistake.
	if o.PolicyFile == "" && cfg.AuditBackend != nil {
		return nil, errors.New("an audit backend needs an audit policy file (Audit.PolicyFile)")
	}
	// ApplyTo fills in a generic server's config: only the two audit
	// fields are read from it.
	var c genericserver.Config
	if err := o.ApplyTo(&c); err != nil {
		return nil, fmt.Errorf("unable to configure audit: %w", err)
	}
	a.evaluator = c.AuditPolicyRuleEvaluator
	a.backend = c.AuditBackend
	if cfg.AuditBackend != nil {
		if a.backend == nil {
			a.backend = cfg.AuditBackend
		} else {
			a.backend = audit.Union(a.backend, cfg.AuditBackend)
		}
	}
	if a.backend == nil {
		a.evaluator = nil
	}
	return a, nil
}

// run starts the backends (a batching backend's workers).
func (a *auditing) run() error {
	if a.backend == nil {
		return nil
	}
	return a.backend.Run(a.stop)
}

// shutdown stops the backends once the requests have drained: a batching
// backend writes what it holds, as kube-apiserver's does when it stops.
func (a *auditing) shutdown() {
	if a.backend == nil {
		return
	}
	select {
	case <-a.stop:
		return
	default:
	}
	close(a.stop)
	a.backend.Shutdown()
}

// NewAuditOptions returns kube-apiserver's audit options with their
// defaults (a JSON log in blocking mode, audit.k8s.io/v1 events), for
// Config.Audit and for flags (AddFlags adds kube-apiserver's --audit-*).
func NewAuditOptions() *genericoptions.AuditOptions { return genericoptions.NewAuditOptions() }
