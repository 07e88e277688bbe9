package kubeletsim

import (
	"slices"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

func TestShard(t *testing.T) {
	pools := []NodePool{{Name: "a", Count: 5}, {Name: "b", Count: 2}}
	for _, tc := range []struct {
		shard Shard
		want  []string
		err   bool
	}{
		{Shard{}, []string{"a-0", "a-1", "a-2", "a-3", "a-4", "b-0", "b-1"}, false},
		{Shard{Index: 0, Count: 2}, []string{"a-0", "a-2", "a-4", "b-0"}, false},
		{Shard{Index: 1, Count: 2}, []string{"a-1", "a-3", "b-1"}, false},
		{Shard{Index: 2, Count: 3}, []string{"a-2"}, false},
		{Shard{Index: 2, Count: 2}, nil, true},
		{Shard{Index: -1, Count: 2}, nil, true},
	} {
		s, err := New(Config{Client: fake.NewClientset(), Pools: pools, Shard: tc.shard})
		if tc.err {
			if err == nil {
				t.Errorf("shard %+v: no error", tc.shard)
			}
			continue
		}
		if err != nil {
			t.Fatalf("shard %+v: %v", tc.shard, err)
		}
		got := s.NodeNames()
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("shard %+v: nodes %v, want %v", tc.shard, got, tc.want)
		}
	}
}
