package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/client-go/kubernetes"
)

// memoryAudit is an audit backend that keeps the events.
type memoryAudit struct {
	mu     sync.Mutex
	events []*auditinternal.Event
}

func (m *memoryAudit) ProcessEvents(events ...*auditinternal.Event) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range events {
		m.events = append(m.events, ev.DeepCopy())
	}
	return true
}
func (m *memoryAudit) Run(<-chan struct{}) error { return nil }
func (m *memoryAudit) Shutdown()                 {}
func (m *memoryAudit) String() string            { return "memory" }

// of returns the events of user's requests, as stage:verb:resource/name:code.
func (m *memoryAudit) of(user string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, ev := range m.events {
		if ev.User.Username != user {
			continue
		}
		s := string(ev.Stage) + ":" + ev.Verb
		if ev.ObjectRef != nil {
			s += ":" + ev.ObjectRef.Resource + "/" + ev.ObjectRef.Name
		}
		if ev.ResponseStatus != nil {
			s += ":" + strconv.Itoa(int(ev.ResponseStatus.Code))
		}
		out = append(out, s)
	}
	return out
}

func writePolicy(t *testing.T, policy string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The server records audit events as kube-apiserver does under the same
// policy: by level, at each stage, with the user, verb, object and answer,
// for requests that fail authentication too; to a JSON log and to a
// backend of the caller's.
func TestAudit(t *testing.T) {
	policy := writePolicy(t, `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["quiet"]
- level: RequestResponse
  resources: [{group: "", resources: ["configmaps"]}]
- level: Metadata
`)
	log := filepath.Join(t.TempDir(), "audit.log")
	opts := NewAuditOptions()
	opts.PolicyFile, opts.LogOptions.Path = policy, log
	mem := &memoryAudit{}
	s, stop := startServerWith(t, Config{AnyPort: true, Audit: opts, AuditBackend: mem})
	ctx := context.Background()

	for _, u := range []string{"alice", "quiet"} {
		cfg, err := s.UserRESTConfig(u, "system:masters")
		if err != nil {
			t.Fatal(err)
		}
		cs := kubernetes.NewForConfigOrDie(cfg)
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-" + u}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Secrets("default").Get(ctx, "none", metav1.GetOptions{}); err == nil {
			t.Fatal("got a Secret that does not exist")
		}
		w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptrInt64(1)})
		if err != nil {
			t.Fatal(err)
		}
		for range w.ResultChan() {
		}
	}
	// A request with a token the server does not know.
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer not-a-token")
	ca := x509.NewCertPool()
	ca.AppendCertsFromPEM(s.CACertPEM())
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca}}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d, want 401", resp.StatusCode)
	}
	stop() // the backends have what the requests wrote

	want := []string{
		"ResponseComplete:create:configmaps/cm-alice:201",
		"ResponseComplete:get:secrets/none:404",
		"ResponseStarted:watch:pods/:200",
		"ResponseComplete:watch:pods/:200",
	}
	if got := mem.of("alice"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("alice's events:\n got %q\nwant %q", got, want)
	}
	if got := mem.of("quiet"); len(got) > 0 {
		t.Errorf("events of a user the policy records at level None: %q", got)
	}
	// kube-apiserver's failed-authentication event: the request, no user.
	if got := mem.of(""); strings.Join(got, " ") != "ResponseStarted:list:namespaces/:401" {
		t.Errorf("events of the request with an unknown token: %q", got)
	}

	// The log backend wrote the same events, as JSON lines of
	// audit.k8s.io/v1 Events; the create's at RequestResponse level with
	// both objects, the others at Metadata level without.
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type event struct {
		Kind, APIVersion, Level, Stage, Verb string
		User                                 struct{ Username string }
		ObjectRef                            *struct{ Resource, Name string }
		RequestObject, ResponseObject        json.RawMessage
		Annotations                          map[string]string
	}
	var lines []event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit log line %q: %v", sc.Text(), err)
		}
		lines = append(lines, ev)
	}
	if len(lines) != len(mem.events) {
		t.Fatalf("the log has %d events, the backend %d", len(lines), len(mem.events))
	}
	for _, ev := range lines {
		if ev.Kind != "Event" || ev.APIVersion != "audit.k8s.io/v1" {
			t.Errorf("log event of kind %s/%s", ev.APIVersion, ev.Kind)
		}
		if ev.User.Username != "alice" {
			continue
		}
		if ev.Annotations["authorization.k8s.io/decision"] != "allow" {
			t.Errorf("%s %s: annotations %v, want the authorizer's decision", ev.Verb, ev.ObjectRef, ev.Annotations)
		}
		isCM := ev.ObjectRef != nil && ev.ObjectRef.Resource == "configmaps"
		if wantLevel := map[bool]string{true: "RequestResponse", false: "Metadata"}[isCM]; ev.Level != wantLevel {
			t.Errorf("%s %s: level %s, want %s", ev.Verb, ev.ObjectRef, ev.Level, wantLevel)
		}
		if has := len(ev.RequestObject) > 0 && len(ev.ResponseObject) > 0; has != isCM {
			t.Errorf("%s %s at %s: request and response objects recorded: %v", ev.Verb, ev.ObjectRef, ev.Level, has)
		}
	}
}

// Audit options are validated as kube-apiserver validates its flags, and
// a backend of the caller's needs a policy.
func TestAuditConfigErrors(t *testing.T) {
	badMode := NewAuditOptions()
	badMode.PolicyFile = writePolicy(t, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
	badMode.LogOptions.Path = filepath.Join(t.TempDir(), "audit.log")
	badMode.LogOptions.BatchOptions.Mode = "sometimes"
	noFile := NewAuditOptions()
	noFile.PolicyFile = filepath.Join(t.TempDir(), "missing.yaml")
	badPolicy := NewAuditOptions()
	badPolicy.PolicyFile = writePolicy(t, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n")
	for _, c := range []struct {
		name    string
		cfg     Config
		message string
	}{
		{"unknown mode", Config{Audit: badMode}, "invalid audit options"},
		{"missing policy file", Config{Audit: noFile}, "missing.yaml"},
		{"invalid level", Config{Audit: badPolicy}, "Loud"},
		{"backend without a policy", Config{AuditBackend: &memoryAudit{}}, "needs an audit policy file"},
		{"backend with options but no policy", Config{Audit: NewAuditOptions(), AuditBackend: &memoryAudit{}}, "needs an audit policy file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.AnyPort = true
			s, err := New(c.cfg)
			if err == nil {
				s.listener.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), c.message) {
				t.Fatalf("error %q does not say %q", err, c.message)
			}
		})
	}
}

func ptrInt64(v int64) *int64 { return &v }
