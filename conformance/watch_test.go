package conformance_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// next returns the next event of w within 10 seconds.
func next(w watch.Interface) watch.Event {
	GinkgoHelper()
	select {
	case e, ok := <-w.ResultChan():
		Expect(ok).To(BeTrue(), "watch closed")
		return e
	case <-time.After(10 * time.Second):
		Fail("no watch event within 10s")
	}
	return watch.Event{}
}

func expectConfigMapEvent(w watch.Interface, typ watch.EventType, name string) *corev1.ConfigMap {
	GinkgoHelper()
	e := next(w)
	Expect(e.Type).To(Equal(typ), "%#v", e.Object)
	cm, ok := e.Object.(*corev1.ConfigMap)
	Expect(ok).To(BeTrue(), "%#v", e.Object)
	Expect(cm.Name).To(Equal(name))
	return cm
}

var _ = Describe("watch", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		// The server picks a name no other spec has.
		created, err := target.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "conformance-watch-"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ns = created.Name
	})
	create := func(ctx SpecContext, name string) *corev1.ConfigMap {
		GinkgoHelper()
		cm, err := target.Clientset().CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		return cm
	}

	It("streams the changes after a resourceVersion, in order, exactly once", func(ctx SpecContext) {
		cms := target.Clientset().CoreV1().ConfigMaps(ns)
		create(ctx, "before")
		list, err := cms.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		a := create(ctx, "a")
		w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		Expect(expectConfigMapEvent(w, watch.Added, "a").ResourceVersion).To(Equal(a.ResourceVersion))
		a.Data = map[string]string{"k": "v"}
		a2, err := cms.Update(ctx, a, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(expectConfigMapEvent(w, watch.Modified, "a").ResourceVersion).To(Equal(a2.ResourceVersion))
		Expect(cms.Delete(ctx, "a", metav1.DeleteOptions{})).To(Succeed())
		deleted := expectConfigMapEvent(w, watch.Deleted, "a")
		Expect(deleted.ResourceVersion).NotTo(Equal(a2.ResourceVersion))
		// A watch from the deletion's revision sees nothing old.
		w2, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: deleted.ResourceVersion})
		Expect(err).NotTo(HaveOccurred())
		defer w2.Stop()
		create(ctx, "after")
		expectConfigMapEvent(w2, watch.Added, "after")
	})

	It("starts a watch without a resourceVersion with the current objects", func(ctx SpecContext) {
		cms := target.Clientset().CoreV1().ConfigMaps(ns)
		create(ctx, "existing")
		w, err := cms.Watch(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		expectConfigMapEvent(w, watch.Added, "existing")
		create(ctx, "new")
		expectConfigMapEvent(w, watch.Added, "new")
	})

	It("filters by label and field selector, turning a selector change into ADDED and DELETED", func(ctx SpecContext) {
		cms := target.Clientset().CoreV1().ConfigMaps(ns)
		list, err := cms.List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "watched=yes"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		cm := create(ctx, "flip")
		cm.Labels = map[string]string{"watched": "yes"}
		cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectConfigMapEvent(w, watch.Added, "flip")
		cm.Labels = nil
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expectConfigMapEvent(w, watch.Deleted, "flip")

		byName, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: "metadata.name=flip"})
		Expect(err).NotTo(HaveOccurred())
		defer byName.Stop()
		expectConfigMapEvent(byName, watch.Added, "flip")
		expectConfigMapEvent(byName, watch.Modified, "flip")
		expectConfigMapEvent(byName, watch.Modified, "flip")
	})

	It("streams initial events with sendInitialEvents, ending with the initial-events-end bookmark", func(ctx SpecContext) {
		cms := target.Clientset().CoreV1().ConfigMaps(ns)
		create(ctx, "one")
		create(ctx, "two")
		yes := true
		w, err := cms.Watch(ctx, metav1.ListOptions{
			SendInitialEvents:    &yes,
			AllowWatchBookmarks:  true,
			ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		expectConfigMapEvent(w, watch.Added, "one")
		expectConfigMapEvent(w, watch.Added, "two")
		e := next(w)
		Expect(e.Type).To(Equal(watch.Bookmark))
		bm := e.Object.(*corev1.ConfigMap)
		Expect(bm.Annotations).To(HaveKeyWithValue(metav1.InitialEventsAnnotationKey, "true"))
		Expect(bm.ResourceVersion).NotTo(BeEmpty())
		create(ctx, "three")
		expectConfigMapEvent(w, watch.Added, "three")
	})

	It("ends a watch after timeoutSeconds", func(ctx SpecContext) {
		timeout := int64(1)
		w, err := target.Clientset().CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{TimeoutSeconds: &timeout, ResourceVersion: "0"})
		Expect(err).NotTo(HaveOccurred())
		Eventually(w.ResultChan()).WithTimeout(10 * time.Second).Should(BeClosed())
	})

	// compactedRV is revision 1: older than any history either server keeps
	// once it has compacted (on an interval: 10s for the suite's kubesim,
	// --etcd-compaction-interval for kube-apiserver).
	const compactedRV = "1"

	It("answers a list at a compacted resourceVersion with 410 Expired", func(ctx SpecContext) {
		cms := target.Clientset().CoreV1().ConfigMaps(ns)
		untilCompacted(ctx, ns, func(g Gomega) {
			_, err := cms.List(ctx, metav1.ListOptions{ResourceVersion: compactedRV, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
			g.Expect(apierrors.IsResourceExpired(err)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(Equal("The resourceVersion for the provided list is too old."))
		})
	})

	It("ends a watch from a compacted resourceVersion with the 410 Expired event", func(ctx SpecContext) {
		if !target.IsKubesim() {
			Skip("kube-apiserver serves watches from its watch cache, whose window a client cannot push an old revision out of; measured on v1.37.2: a watch from resourceVersion 1 neither errors nor replays")
		}
		cms := target.Clientset().CoreV1().ConfigMaps(ns)
		untilCompacted(ctx, ns, func(g Gomega) {
			w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: compactedRV})
			g.Expect(err).NotTo(HaveOccurred())
			defer w.Stop()
			var e watch.Event
			g.Eventually(w.ResultChan()).WithTimeout(5 * time.Second).Should(Receive(&e))
			g.Expect(e.Type).To(Equal(watch.Error))
			g.Expect(apierrors.IsResourceExpired(apierrors.FromObject(e.Object))).To(BeTrue(), "%#v", e.Object)
		})
	})
})

// untilCompacted keeps writing to namespace ns, so that the server's
// compaction moves on, until check passes (90s at most).
func untilCompacted(ctx SpecContext, ns string, check func(g Gomega)) {
	GinkgoHelper()
	cms := target.Clientset().CoreV1().ConfigMaps(ns)
	n := 0
	Eventually(func(g Gomega) {
		n++
		_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("tick-%d", n)}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		check(g)
	}).WithTimeout(90 * time.Second).WithPolling(2 * time.Second).Should(Succeed())
}
