package crdserver

import (
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
)

func TestConvertingWatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		// read: the consumer reads the converted event; otherwise it stops
		// the watch while the event is being handed over, as the API watch
		// does when its client is gone.
		read bool
	}{
		{name: "converts each event", read: true},
		{name: "stops without a reader", read: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			in := watch.NewFake()
			converted := make(chan struct{}, 1)
			w := newConvertingWatch(in, func(e watch.Event) watch.Event {
				converted <- struct{}{}
				return watch.Event{Type: e.Type, Object: &unstructured.Unstructured{Object: map[string]any{"converted": true}}}
			})
			go in.Add(&unstructured.Unstructured{Object: map[string]any{}})
			select {
			case <-converted:
			case <-time.After(time.Minute):
				t.Fatal("the event was not converted")
			}
			if tc.read {
				e := <-w.ResultChan()
				if u, ok := e.Object.(*unstructured.Unstructured); e.Type != watch.Added || !ok || u.Object["converted"] != true {
					t.Errorf("event %v %#v, want Added with the converted object", e.Type, e.Object)
				}
			}
			w.Stop()
			w.Stop() // a second Stop is harmless
			if tc.read {
				if _, open := <-w.ResultChan(); open {
					t.Error("ResultChan still open after Stop and the input's end")
				}
			}
		})
	}
}
