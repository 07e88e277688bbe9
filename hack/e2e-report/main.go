// Command e2e-report writes CONFORMANCE.md from the JUnit reports of
// hack/e2e-upstream.sh (conformance/upstream/results/kubesim.xml and, as the
// baseline, reference.xml) and the test list conformance/upstream/tests.txt:
// per test, kubesim's and the reference's result; failures grouped by reason;
// the skipped tests counted by reason.
package main

import (
	"bufio"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"k8s.io/klog/v2"
)

type suites struct {
	Suites []suite `xml:"testsuite"`
}

type suite struct {
	Timestamp string     `xml:"timestamp,attr"`
	Cases     []testCase `xml:"testcase"`
}

type testCase struct {
	Name    string   `xml:"name,attr"`
	Time    float64  `xml:"time,attr"`
	Status  string   `xml:"status,attr"`
	Failure *message `xml:"failure"`
	Error   *message `xml:"error"`
	Skipped *message `xml:"skipped"`
}

type message struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// result is one test's outcome on a target.
type result struct {
	outcome string // passed, failed, not reached
	reason  string
	seconds float64
}

func main() {
	list := flag.String("tests", "conformance/upstream/tests.txt", "the test list")
	kubesim := flag.String("kubesim", "conformance/upstream/results/kubesim.xml", "kubesim's JUnit report (several, comma-separated: the last with a result for a test wins)")
	reference := flag.String("reference", "conformance/upstream/results/reference.xml", "the reference's JUnit report")
	out := flag.String("out", "CONFORMANCE.md", "the report to write")
	flag.Parse()
	if err := run(*list, *kubesim, *reference, *out); err != nil {
		klog.ErrorS(err, "e2e-report")
		os.Exit(1)
	}
}

type entry struct{ decision, reason, name string }

func readList(path string) ([]entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []entry
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		out = append(out, entry{parts[0], parts[1], parts[2]})
	}
	return out, s.Err()
}

var (
	ansi   = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	noise  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[a-z0-9-]+-[0-9]{3,5}\b|\b\d+(\.\d+)?(ms|s|m)\b|\b\d{3,}\b`)
	spaces = regexp.MustCompile(`\s+`)
)

// reason is the first line of a failure, with names and numbers that differ
// between runs masked so that equal failures group together.
func reason(m *message) string {
	text := m.Message
	if strings.TrimSpace(text) == "" {
		text = m.Text
	}
	text = ansi.ReplaceAllString(text, "")
	line := ""
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "[FAILED]"))
		// Skip where it failed; keep what failed.
		if l != "" && !strings.HasPrefix(l, "In [") {
			line = l
			break
		}
	}
	line = noise.ReplaceAllString(line, "…")
	line = spaces.ReplaceAllString(line, " ")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return strings.ReplaceAll(line, "|", `\|`)
}

func readResults(path string) (map[string]result, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var s suites
	if err := xml.Unmarshal(b, &s); err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]result{}
	stamp := ""
	for _, su := range s.Suites {
		stamp = su.Timestamp
		for _, c := range su.Cases {
			switch {
			case c.Failure != nil:
				out[c.Name] = result{"failed", reason(c.Failure), c.Time}
			case c.Error != nil:
				out[c.Name] = result{"failed", reason(c.Error), c.Time}
			case c.Skipped != nil:
				// Not focused, or not reached before the suite's timeout.
				if !strings.Contains(c.Skipped.Message, "skipped - ") || strings.Contains(c.Skipped.Message, "interrupt") {
					out[c.Name] = result{"not reached", "", c.Time}
				}
			default:
				out[c.Name] = result{"passed", "", c.Time}
			}
		}
	}
	return out, stamp, nil
}

// lookup finds a test's result: JUnit names carry the spec's labels after
// the text. A test the report does not have was not reached.
func lookup(results map[string]result, name string) result {
	if r, ok := results[name]; ok {
		return r
	}
	for k, r := range results {
		if strings.Contains(k, name) {
			return r
		}
	}
	return result{outcome: "not reached"}
}

func run(listPath, kubesimPath, referencePath, outPath string) error {
	list, err := readList(listPath)
	if err != nil {
		return err
	}
	// kubesim's report may come in parts (a run, then the tests it did not
	// reach, or a re-run after a fix): a later part's result for a test
	// wins over an earlier one, unless it did not reach the test.
	ks := map[string]result{}
	var stamps []string
	for _, part := range strings.Split(kubesimPath, ",") {
		res, stamp, err := readResults(part)
		if err != nil {
			return err
		}
		stamps = append(stamps, stamp)
		for name, r := range res {
			if _, ok := ks[name]; !ok || r.outcome != "not reached" {
				ks[name] = r
			}
		}
	}
	ksStamp := strings.Join(stamps, " and ")
	ref, refStamp, refErr := readResults(referencePath)

	var b strings.Builder
	b.WriteString("# Upstream conformance\n\n")
	b.WriteString("The `[Conformance]` tests of k8s.io/kubernetes v1.37.2 (`test/e2e`, 462 tests), run by `make e2e-upstream`\n")
	b.WriteString("against kubesim and, as the baseline, against the genuine kube-apiserver + etcd of the pin. Both\n")
	b.WriteString("targets run the genuine kube-controller-manager and kube-scheduler of the pin (kubesim in-process, the\n")
	b.WriteString("reference from `hack/control-plane.sh`) and two Node objects kept Ready by `hack/e2e-nodes` (no kubelet:\n")
	b.WriteString("tests whose pods must start are skipped). Tests run in 4 parallel processes with a suite timeout; the\n")
	b.WriteString("tests a timed-out run did not reach run in a later part, and a later part may re-run tests after a fix\n")
	b.WriteString("(its result wins).\n")
	b.WriteString("The list, with the reason for every skip, is `conformance/upstream/tests.txt`.\n\n")
	fmt.Fprintf(&b, "kubesim run: %s. Reference run: %s.\n\n", ksStamp, refStamp)

	count := func(res map[string]result) map[string]int {
		c := map[string]int{}
		for _, e := range list {
			if e.decision != "run" {
				continue
			}
			c[lookup(res, e.name).outcome]++
		}
		return c
	}
	runN := 0
	skips := map[string]int{}
	for _, e := range list {
		if e.decision == "run" {
			runN++
		} else {
			skips[e.reason]++
		}
	}
	kc := count(ks)
	b.WriteString("| | kubesim | reference |\n|---|---|---|\n")
	rc := map[string]int{}
	if refErr == nil {
		rc = count(ref)
	}
	fmt.Fprintf(&b, "| tests run | %d | %d |\n", runN, runN)
	for _, o := range []string{"passed", "failed", "not reached"} {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", o, kc[o], rc[o])
	}
	fmt.Fprintf(&b, "| skipped by the list | %d | %d |\n\n", len(list)-runN, len(list)-runN)

	// Failures grouped by reason.
	groups := map[string][]string{}
	for _, e := range list {
		if r := lookup(ks, e.name); r.outcome == "failed" {
			groups[r.reason] = append(groups[r.reason], e.name)
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return len(groups[keys[i]]) > len(groups[keys[j]]) || (len(groups[keys[i]]) == len(groups[keys[j]]) && keys[i] < keys[j])
	})
	b.WriteString("## kubesim's failures, grouped by reason\n\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "- **%s** (%d)\n", k, len(groups[k]))
		for _, n := range groups[k] {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	b.WriteString("\n## Every test run\n\n| test | kubesim | reference |\n|---|---|---|\n")
	for _, e := range list {
		if e.decision != "run" {
			continue
		}
		k := lookup(ks, e.name)
		r := result{outcome: "-"}
		if refErr == nil {
			r = lookup(ref, e.name)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", strings.ReplaceAll(e.name, "|", `\|`), k.outcome, r.outcome)
	}
	b.WriteString("\n## Skipped, by reason\n\n")
	reasons := make([]string, 0, len(skips))
	for k := range skips {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		fmt.Fprintf(&b, "- %s: %d tests\n", k, skips[k])
	}
	return os.WriteFile(outPath, []byte(b.String()), 0o644)
}
