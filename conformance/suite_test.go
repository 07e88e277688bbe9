package conformance_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/kubesim/kubesim/conformance/framework"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/golden from the target's output")

// target is the cluster every spec runs against.
var target *framework.Target

func TestConformance(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubesim conformance")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	target, err = framework.Start(ctx)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		// kubesim up must shut down cleanly and exit 0 on SIGTERM.
		Expect(target.Stop(30 * time.Second)).To(Succeed())
	})
}, NodeTimeout(time.Minute))

// testdata returns the path of a file under the repository's testdata/.
func testdata(parts ...string) string {
	return filepath.Join(append([]string{"..", "testdata"}, parts...)...)
}

// expectGolden compares got with testdata/golden/name, or rewrites the
// golden file with -update.
func expectGolden(name, got string) {
	path := testdata("golden", name)
	if *update {
		Expect(os.WriteFile(path, []byte(got), 0o644)).To(Succeed())
		return
	}
	want, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred(), "golden file %s (run with -update to create it)", path)
	Expect(got).To(Equal(string(want)), "output differs from %s", path)
}
