package registry

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	api "k8s.io/kubernetes/pkg/apis/core"
)

// TestEncodedObjects checks that the watches of a change share one
// encoding per encoder, and that a watch far behind still gets its event.
func TestEncodedObjects(t *testing.T) {
	var c encodedObjects
	pod := &api.Pod{}
	first, second := c.wrap(pod), c.wrap(pod)
	if first != second {
		t.Fatal("two watches of one change got different wrappers")
	}
	if first.(runtime.CacheableObject).GetObject() != pod {
		t.Fatal("the wrapper does not hold the event's object")
	}
	u := &unstructured.Unstructured{}
	if c.wrap(u) == c.wrap(u) {
		t.Error("a custom resource (converted for each watch) got a shared wrapper")
	}

	var encodes atomic.Int32
	encode := func(obj runtime.Object, w io.Writer) error {
		encodes.Add(1)
		if obj == runtime.Object(pod) {
			t.Error("the encoder was given the shared object, which encoders write to")
		}
		_, err := w.Write([]byte("encoded:" + string(obj.(*api.Pod).Name)))
		return err
	}
	pod.Name = "p"
	co := first.(runtime.CacheableObject)
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, 8)
	for i := range outs {
		wg.Go(func() {
			if err := co.CacheEncode("protobuf", encode, &outs[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := encodes.Load(); n != 1 {
		t.Errorf("8 watches in one encoding encoded %d times, want once", n)
	}
	for i := range outs {
		if outs[i].String() != "encoded:p" {
			t.Errorf("watch %d got %q", i, outs[i].String())
		}
	}
	var out bytes.Buffer
	if err := co.CacheEncode("json", encode, &out); err != nil || encodes.Load() != 2 {
		t.Errorf("a second encoding: %v, %d encodes, want 2", err, encodes.Load())
	}

	// Past encodeCacheSize later changes, the change gets a new wrapper.
	for range encodeCacheSize {
		c.wrap(&api.Pod{})
	}
	if c.wrap(pod) == first {
		t.Error("a wrapper outlived encodeCacheSize later changes")
	}
	if len(c.objs) != encodeCacheSize {
		t.Errorf("%d wrappers kept, want %d", len(c.objs), encodeCacheSize)
	}
}
