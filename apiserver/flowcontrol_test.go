package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// holder is a non-resource handler that holds each request until released,
// so that a test knows a request holds its seat while it sends the next.
type holder struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newHolder() *holder {
	return &holder{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (h *holder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/hold/" {
		w.Write([]byte("not held"))
		return
	}
	h.entered <- struct{}{}
	select {
	case <-h.release:
		w.Write([]byte("released"))
	case <-req.Context().Done():
	}
}

func (h *holder) releaseAll() { h.once.Do(func() { close(h.release) }) }

// userClient is an HTTP client of the server with user's identity.
func userClient(t *testing.T, s *Server, name string, groups ...string) *http.Client {
	t.Helper()
	cfg, err := s.UserRESTConfig(name, groups...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type answer struct {
	code       int
	header     http.Header
	body       string
	transportE error
}

func get(c *http.Client, url string) answer {
	resp, err := c.Get(url)
	if err != nil {
		return answer{transportE: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// status decodes a Status body's code, reason and message.
func status(t *testing.T, body string) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("not a Status: %q: %v", body, err)
	}
	return st
}

// TestFlowControlClassifies: every answer names the FlowSchema and the
// priority level that classified its request by their UIDs, as
// kube-apiserver's filter answers: an administrator's requests are exempt,
// a node's go to system-nodes, anyone else's to global-default (and
// kubesim's components' where upstream's identities go); the
// configuration controller reports in each FlowSchema's status that its
// priority level exists.
func TestFlowControlClassifies(t *testing.T) {
	s, _ := startServer(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(s.RESTConfig())
	for _, tc := range []struct {
		name       string
		user       string
		groups     []string
		flowSchema string
		level      string
	}{
		{"administrator", "root", []string{user.SystemPrivilegedGroup}, "exempt", "exempt"},
		{"node", "system:node:n1", []string{user.NodesGroup}, "system-nodes", "system"},
		{"scheduler", user.KubeScheduler, nil, "kube-scheduler", "workload-high"},
		{"anyone else", "alice", nil, "global-default", "global-default"},
		// kubesim's in-process components: authorized as administrators,
		// classified as the identities they stand for.
		{"kube-controller-manager", user.KubeControllerManager, []string{ComponentsGroup}, "kube-controller-manager", "workload-high"},
		{"simulated kubelets", "system:kubesim:kubeletsim", []string{user.NodesGroup, ComponentsGroup}, "system-nodes", "system"},
		{"add-ons", "system:serviceaccount:kube-system:kubesim-addons", []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", ComponentsGroup}, "kube-system-service-accounts", "workload-high"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := admin.FlowcontrolV1().FlowSchemas().Get(ctx, tc.flowSchema, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pl, err := admin.FlowcontrolV1().PriorityLevelConfigurations().Get(ctx, tc.level, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c := userClient(t, s, tc.user, tc.groups...)
			for _, path := range []string{"/api/v1/namespaces/default", "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1", "/version"} {
				a := get(c, s.URL()+path)
				if a.transportE != nil {
					t.Fatal(a.transportE)
				}
				if privileged := slices.Contains(tc.groups, user.SystemPrivilegedGroup) || slices.Contains(tc.groups, ComponentsGroup); privileged && a.code != http.StatusOK {
					t.Errorf("GET %s: %d for a privileged user", path, a.code)
				}
				if got := a.header.Get("X-Kubernetes-PF-FlowSchema-UID"); got != string(fs.UID) {
					t.Errorf("GET %s: X-Kubernetes-PF-FlowSchema-UID %q, want %s's %q", path, got, tc.flowSchema, fs.UID)
				}
				if got := a.header.Get("X-Kubernetes-PF-PriorityLevel-UID"); got != string(pl.UID) {
					t.Errorf("GET %s: X-Kubernetes-PF-PriorityLevel-UID %q, want %s's %q", path, got, tc.level, pl.UID)
				}
			}
		})
	}
	t.Run("status", func(t *testing.T) {
		// The controller writes the conditions once it has digested the
		// configuration; wait for every FlowSchema's.
		var last []flowcontrolv1.FlowSchema
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			list, err := admin.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			last = list.Items
			for _, fs := range list.Items {
				if len(fs.Status.Conditions) == 0 {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("FlowSchemas without status conditions: %v: %+v", err, last)
		}
		for _, fs := range last {
			c := fs.Status.Conditions[0]
			want := `This FlowSchema references the PriorityLevelConfiguration object named "` + fs.Spec.PriorityLevelConfiguration.Name + `" and it exists`
			if len(fs.Status.Conditions) != 1 || c.Type != flowcontrolv1.FlowSchemaConditionDangling || c.Status != flowcontrolv1.ConditionFalse || c.Reason != "Found" || c.Message != want || c.LastTransitionTime.IsZero() {
				t.Errorf("FlowSchema %s: conditions %+v, want Dangling False Found %q", fs.Name, fs.Status.Conditions, want)
			}
		}
	})
}

// mayHold lets user get the holder's paths, and waits until the
// authorizer lets them.
func mayHold(t *testing.T, s *Server, c *http.Client, name string) {
	t.Helper()
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(s.RESTConfig())
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "hold-" + name},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/hold/", "/hold/*"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "hold-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "hold-" + name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last answer
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		last = get(c, s.URL()+"/hold/ping")
		return last.transportE == nil && last.code == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("%s may not get /hold/: %v: last answer %+v", name, err, last)
	}
}

// limitedLevel makes a priority level of one seat that rejects what it
// cannot serve at once, for the user bob, and waits until the server
// classifies bob's requests with it.
func limitedLevel(t *testing.T, s *Server, bob *http.Client) {
	t.Helper()
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(s.RESTConfig())
	pl, err := admin.FlowcontrolV1().PriorityLevelConfigurations().Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "one-seat"},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: ptr.To[int32](1),
				LendablePercent:          ptr.To[int32](0),
				BorrowingLimitPercent:    ptr.To[int32](0),
				LimitResponse:            flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := admin.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "bob"},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: pl.Name},
			MatchingPrecedence:         100,
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects:         []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: "bob"}}},
				ResourceRules:    []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"}}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		a := get(bob, s.URL()+"/version")
		return a.transportE == nil && a.header.Get("X-Kubernetes-PF-FlowSchema-UID") == string(fs.UID), nil
	}); err != nil {
		t.Fatalf("bob's requests are not classified by the FlowSchema bob: %v", err)
	}
}

// TestFlowControlRejects: a request that finds its priority level's seats
// taken is answered 429 with Retry-After and kube-apiserver's text, with API Priority and Fairness
// (a level that rejects rather than queues) and with the max-in-flight
// limits instead; the request that holds the seat completes.
func TestFlowControlRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		// prepare makes bob's requests limited to one at a time.
		prepare func(t *testing.T, s *Server, bob *http.Client)
	}{
		// With a concurrency limit of 100, the level's share (one in
		// about 250) is one seat; the others keep a few (with less, a
		// level that lends half its seats may be left with none).
		{"priority and fairness", Config{MaxRequestsInFlight: 60, MaxMutatingRequestsInFlight: 40}, limitedLevel},
		{"max in flight", Config{DisablePriorityAndFairness: true, MaxRequestsInFlight: 1}, func(*testing.T, *Server, *http.Client) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hold := newHolder()
			defer hold.releaseAll()
			tc.cfg.AnyPort = true
			tc.cfg.NonResourceHandlers = map[string]http.Handler{"/hold/": hold}
			s, _ := startServerWith(t, tc.cfg)
			bob := userClient(t, s, "bob")
			mayHold(t, s, bob, "bob")
			tc.prepare(t, s, bob)
			held := make(chan answer, 1)
			go func() { held <- get(bob, s.URL()+"/hold/") }()
			<-hold.entered
			a := get(bob, s.URL()+"/api/v1/namespaces/default")
			if a.transportE != nil {
				t.Fatal(a.transportE)
			}
			if a.code != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
				t.Errorf("a request while bob's seat is taken: %d, Retry-After %q, want 429 with Retry-After; body %s", a.code, a.header.Get("Retry-After"), a.body)
			} else if a.body != "Too many requests, please try again later.\n" {
				// As kube-apiserver's filters answer it: text, not a Status.
				t.Errorf("429's body: %q", a.body)
			}
			hold.releaseAll()
			if a := <-held; a.transportE != nil || a.code != http.StatusOK || a.body != "released" {
				t.Errorf("the held request: %+v", a)
			}
		})
	}
}

// TestRequestTimeout: a request that runs past its timeout parameter or
// the server's request timeout is answered 504 with kube-apiserver's
// Status; a timeout parameter that is not a duration is answered 400.
func TestRequestTimeout(t *testing.T) {
	hold := newHolder()
	defer hold.releaseAll()
	s, _ := startServerWith(t, Config{AnyPort: true, RequestTimeout: 2 * time.Second, NonResourceHandlers: map[string]http.Handler{"/hold/": hold}})
	c := userClient(t, s, "carol")
	mayHold(t, s, c, "carol")
	for _, tc := range []struct {
		name, path string
		code       int
		message    string
	}{
		{"timeout parameter", "/hold/?timeout=100ms", http.StatusGatewayTimeout, "Timeout: request did not complete within the allotted timeout"},
		{"server's request timeout", "/hold/", http.StatusGatewayTimeout, "Timeout: request did not complete within the allotted timeout"},
		{"a longer timeout parameter is cut to the server's", "/hold/?timeout=1h", http.StatusGatewayTimeout, "Timeout: request did not complete within the allotted timeout"},
		{"not a duration", "/api/v1/namespaces?timeout=soon", http.StatusBadRequest, `invalid timeout specified in the request URL - time: invalid duration "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := get(c, s.URL()+tc.path)
			if a.transportE != nil {
				t.Fatal(a.transportE)
			}
			if a.code != tc.code {
				t.Fatalf("%d, want %d: %s", a.code, tc.code, a.body)
			}
			if st := status(t, a.body); int(st.Code) != tc.code || !strings.HasPrefix(st.Message, tc.message) {
				t.Errorf("Status %+v, want code %d, message %q...", st, tc.code, tc.message)
			}
		})
	}
}

// An open watch does not keep its priority level's seats, as in
// kube-apiserver, where the watch cache tells API Priority and Fairness once
// a watcher has started: with one seat for global-default and twenty
// watches of its users open, another of its requests is still served.
func TestFlowControlWatchesFreeTheirSeats(t *testing.T) {
	s, _ := startServerWith(t, Config{AnyPort: true, MaxRequestsInFlight: 1, MaxMutatingRequestsInFlight: 1, RequestTimeout: 8 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := s.UserRESTConfig("watcher", ComponentsGroup)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	for i := range 20 {
		w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		defer w.Stop()
	}
	// A raw client: client-go would retry a 429.
	a := get(userClient(t, s, "watcher", ComponentsGroup), s.URL()+"/api/v1/namespaces/default")
	if a.transportE != nil {
		t.Fatal(a.transportE)
	}
	if a.code != http.StatusOK {
		t.Fatalf("a get with 20 watches open: %d %s", a.code, a.body)
	}
}
