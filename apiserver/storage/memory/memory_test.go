package memory

import (
	"testing"
	"time"

	"github.com/kubesim/kubesim/apiserver/storage"
	"github.com/kubesim/kubesim/apiserver/storage/storagetest"
)

func TestContract(t *testing.T) {
	storagetest.RunContractTests(t, func(t *testing.T) storage.Interface {
		s, err := New(Config{FutureRevisionWait: 50 * time.Millisecond, CompactionInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
