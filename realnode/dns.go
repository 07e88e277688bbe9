package realnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubesim/kubesim/internal/pki"
)

// Cluster DNS, as kubeadm's CoreDNS add-on provides it: the kube-dns
// Service at the 10th address of the Service range, served by CoreDNS with
// its kubernetes plugin. CoreDNS runs as a process of its own (this binary
// re-executed, like the nodes; nodeexec embeds CoreDNS) on the host end of
// the nodes' link; the
// Service has no selector and an EndpointSlice of that address, so
// kube-proxy on every node sends the pods' queries there.

const (
	dnsService   = "kube-dns"
	dnsUser      = "system:coredns"
	managedByKey = "endpointslice.kubernetes.io/managed-by"
	managedBy    = "realnode.kubesim.io"
)

// corefile is CoreDNS's configuration: the cluster domain and the reverse
// zones from the API, nothing forwarded (nothing leaves the machine).
func corefile(listen, kubeconfig, domain string) string {
	return fmt.Sprintf(`.:53 {
    bind %[1]s
    errors
    kubernetes %[3]s in-addr.arpa ip6.arpa {
        kubeconfig %[2]s kubesim
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loadbalance
}
`, listen, kubeconfig, domain)
}

// startDNS gives CoreDNS its credentials and configuration, ensures the
// kube-dns Service and this network's EndpointSlice, and runs CoreDNS.
func (n *Nodes) startDNS(ctx context.Context) error {
	cfg := n.cfg
	dir := filepath.Join(runRoot, strconv.Itoa(n.index), "coredns")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cert, err := cfg.CA.Issue(pki.CertOptions{CommonName: dnsUser})
	if err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubesim"] = &clientcmdapi.Cluster{Server: cfg.REST.Host, CertificateAuthorityData: cfg.REST.CAData, CertificateAuthority: cfg.REST.CAFile}
	kc.AuthInfos[dnsUser] = &clientcmdapi.AuthInfo{ClientCertificateData: cert.CertPEM, ClientKeyData: cert.KeyPEM}
	kc.Contexts["kubesim"] = &clientcmdapi.Context{Cluster: "kubesim", AuthInfo: dnsUser}
	kc.CurrentContext = "kubesim"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		return err
	}
	conf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(corefile(hostIP(n.index), kubeconfig, cfg.ClusterDomain)), 0o600); err != nil {
		return err
	}
	if err := n.ensureDNSObjects(ctx); err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	dns := child{
		name: "coredns",
		args: []string{cfg.Executable, ExecCommand, "coredns", conf},
		log:  filepath.Join(dir, "coredns.log"),
	}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); keepRunning(ctx, dns, nil) }()
	return nil
}

// ensureDNSObjects creates what kubeadm's CoreDNS add-on creates that
// CoreDNS needs here: its RBAC, the kube-dns Service, and an EndpointSlice
// for this network's CoreDNS. A kube-dns Service someone else made (with a
// selector: a CoreDNS Deployment) is left alone.
func (n *Nodes) ensureDNSObjects(ctx context.Context) error {
	cs := n.client
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: dnsUser},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: dnsUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: dnsUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: dnsUser}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: dnsService, Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
		},
		Spec: v1.ServiceSpec{
			ClusterIP: n.cfg.ClusterDNS,
			Ports: []v1.ServicePort{
				{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP},
			},
		},
	}
	// Another process's real nodes may have made it. kube-apiserver
	// allocates a requested ClusterIP before it checks the name, so a
	// second create fails with "already allocated", not AlreadyExists.
	services := cs.CoreV1().Services(metav1.NamespaceSystem)
	existing, err := services.Get(ctx, dnsService, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		existing, err = services.Create(ctx, svc, metav1.CreateOptions{})
		if err != nil {
			if got, gerr := services.Get(ctx, dnsService, metav1.GetOptions{}); gerr == nil {
				existing, err = got, nil
			}
		}
	}
	if err != nil {
		return err
	}
	if len(existing.Spec.Selector) > 0 {
		klog.FromContext(ctx).Info("kube-dns has a selector: the cluster runs its own DNS, real nodes use it", "selector", existing.Spec.Selector)
		return nil
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.dnsSliceName(), Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{discoveryv1.LabelServiceName: dnsService, managedByKey: managedBy},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{hostIP(n.index)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("dns"), Port: ptr.To[int32](53), Protocol: ptr.To(v1.ProtocolUDP)},
			{Name: ptr.To("dns-tcp"), Port: ptr.To[int32](53), Protocol: ptr.To(v1.ProtocolTCP)},
		},
	}
	_ = cs.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem).Delete(ctx, slice.Name, metav1.DeleteOptions{})
	_, err = cs.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem).Create(ctx, slice, metav1.CreateOptions{})
	return err
}

func (n *Nodes) dnsSliceName() string { return fmt.Sprintf("kube-dns-kubesim-%d", n.index) }

func (n *Nodes) apiSliceName() string { return fmt.Sprintf("kubernetes-kubesim-%d", n.index) }

// publishAPIEndpoint adds an EndpointSlice of the default/kubernetes
// Service for the address the nodes reach the API server at (the
// forwarder on the host end of their link), so that in-cluster clients in
// pods on real nodes (KUBERNETES_SERVICE_HOST) reach it through
// kube-proxy, as a kube-apiserver's endpoint reconciler publishes its own
// address.
func (n *Nodes) publishAPIEndpoint(ctx context.Context) error {
	port := int32(n.fwd.ln.Addr().(*net.TCPAddr).Port)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.apiSliceName(), Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", managedByKey: managedBy},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{hostIP(n.index)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	slices := n.client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	_ = slices.Delete(ctx, slice.Name, metav1.DeleteOptions{})
	_, err := slices.Create(ctx, slice, metav1.CreateOptions{})
	return err
}

// unpublish deletes this network's EndpointSlices: their address is gone.
func (n *Nodes) unpublish(ctx context.Context) error {
	var errs []error
	for _, s := range []struct{ ns, name string }{{metav1.NamespaceSystem, n.dnsSliceName()}, {metav1.NamespaceDefault, n.apiSliceName()}} {
		err := n.client.DiscoveryV1().EndpointSlices(s.ns).Delete(ctx, s.name, metav1.DeleteOptions{})
		var opErr *net.OpError
		if err != nil && !apierrors.IsNotFound(err) && !errors.As(err, &opErr) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
