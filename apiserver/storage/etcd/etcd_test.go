package etcd

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apiserver/pkg/storage/etcd3/testserver"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/storagetest"
)

// runEtcd starts an embedded etcd (go.etcd.io/etcd/server/v3/embed, the
// version the pin's k8s.io/apiserver tests use) for one test.
func runEtcd(t testing.TB) *clientv3.Client {
	return testserver.RunEtcd(t, nil).Client
}

func newStore(t testing.TB, client *clientv3.Client) *Store {
	s, err := New(Config{Client: client, Codec: storagetest.Codec(t), FutureRevisionWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storagetest.RunContractTests(t, func(t *testing.T) storage.Interface {
		return newStore(t, runEtcd(t))
	})
}
