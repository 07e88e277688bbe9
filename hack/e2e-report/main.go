// Command e2e-report writes CONFORMANCE.md from the JUnit reports of
// hack/e2e-upstream.sh (conformance/upstream/results/kubesim.xml and, as the
// baseline, reference.xml) and the test list conformance/upstream/tests.txt:
// per test, kubesim's and the reference's result; failures grouped by reason;
// the skipped tests counted by reason.
package main

import (
	"bufio"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
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
	kubesim := flag.String("kubesim", "conformance/upstream/results/kubesim.xml", "kubesim's JUnit report of the \"run\" tests (several, comma-separated: the last with a result for a test wins)")
	reference := flag.String("reference", "conformance/upstream/results/reference.xml", "the reference's JUnit report of the \"run\" tests")
	kubesimReal := flag.String("kubesim-real", "conformance/upstream/results/kubesim-real.xml", "kubesim's JUnit report of the \"real\" tests, on real nodes (comma-separated parts as -kubesim)")
	referenceReal := flag.String("reference-real", "conformance/upstream/results/reference-real.xml", "the reference's JUnit report of the \"real\" tests, on the same real nodes")
	out := flag.String("out", "CONFORMANCE.md", "the report to write")
	flag.Parse()
	passes := []pass{
		{decision: "run", kubesim: *kubesim, reference: *reference},
		{decision: "real", kubesim: *kubesimReal, reference: *referenceReal},
	}
	if err := run(*list, passes, *out); err != nil {
		klog.ErrorS(err, "e2e-report")
		os.Exit(1)
	}
}

// pass is one run of make e2e-upstream: the tests of one decision in the
// list, and where each side's report is.
type pass struct {
	decision           string
	kubesim, reference string
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

// readParts reads a report that may come in parts (a run, then the tests it
// did not reach, or a re-run after a fix): a later part's result for a test
// wins over an earlier one, unless it did not reach the test.
func readParts(paths string) (map[string]result, string, error) {
	out := map[string]result{}
	var stamps []string
	for _, part := range strings.Split(paths, ",") {
		res, stamp, err := readResults(part)
		if err != nil {
			return nil, "", err
		}
		stamps = append(stamps, stamp)
		for name, r := range res {
			if _, ok := out[name]; !ok || r.outcome != "not reached" {
				out[name] = r
			}
		}
	}
	return out, strings.Join(stamps, " and "), nil
}

var passTitles = map[string]string{
	"run":  "Without containers: two Node objects kept Ready by `hack/e2e-nodes`",
	"real": "With containers: two real nodes",
}

var passIntros = map[string]string{
	"run": "No kubelet: the tests whose pods must start are in the next section.\n",
	"real": "The tests that run containers, on two real nodes (the genuine kubelet and kube-proxy of the pin over\n" +
		"containerd, in network namespaces of their own; images from `make images`): `kubesim up --real-nodes 2`,\n" +
		"and for the reference the same nodes joined with `kubesim node run --real`. (`make e2e-upstream`, or\n" +
		"`hack/e2e-upstream.sh kubesim|reference real` for this pass alone.)\n",
}

func run(listPath string, passes []pass, outPath string) error {
	list, err := readList(listPath)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Upstream conformance\n\n")
	b.WriteString("The `[Conformance]` tests of k8s.io/kubernetes v1.37.2 (`test/e2e`, 462 tests), run by `make e2e-upstream`\n")
	b.WriteString("against kubesim and, as the baseline, against the genuine kube-apiserver + etcd of the pin. Both\n")
	b.WriteString("targets run the genuine kube-controller-manager and kube-scheduler of the pin (kubesim in-process, the\n")
	b.WriteString("reference from `hack/control-plane.sh`). Tests run in parallel processes with a suite timeout; the\n")
	b.WriteString("tests a timed-out run did not reach run in a later part, and a later part may re-run tests after a fix\n")
	b.WriteString("(its result wins).\n")
	b.WriteString("The list, with what each test needs and the reason for every skip, is `conformance/upstream/tests.txt`.\n\n")

	b.WriteString("| | kubesim | reference |\n|---|---|---|\n")
	type tally struct{ ks, ref map[string]int }
	var sections []string
	for _, p := range passes {
		var names []string
		for _, e := range list {
			if e.decision == p.decision {
				names = append(names, e.name)
			}
		}
		ks, ksStamp, ksErr := readParts(p.kubesim)
		ref, refStamp, refErr := readParts(p.reference)
		count := func(res map[string]result, err error) map[string]int {
			c := map[string]int{}
			if err != nil {
				return c
			}
			for _, n := range names {
				c[lookup(res, n).outcome]++
			}
			return c
		}
		kc, rc := count(ks, ksErr), count(ref, refErr)
		fmt.Fprintf(&b, "| **%s** | | |\n", passTitles[p.decision])
		fmt.Fprintf(&b, "| tests | %d | %d |\n", len(names), len(names))
		for _, o := range []string{"passed", "failed", "not reached"} {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", o, countCell(kc[o], ksErr), countCell(rc[o], refErr))
		}
		// The target: kubesim passes every test the reference passes.
		behind := 0
		for _, n := range names {
			if ksErr == nil && refErr == nil && lookup(ref, n).outcome == "passed" && lookup(ks, n).outcome != "passed" {
				behind++
			}
		}
		fmt.Fprintf(&b, "| not passed where the reference passed | %s | |\n", countCell(behind, errors.Join(ksErr, refErr)))

		var sb strings.Builder
		fmt.Fprintf(&sb, "## %s\n\n%s\n", passTitles[p.decision], passIntros[p.decision])
		fmt.Fprintf(&sb, "kubesim run: %s. Reference run: %s.\n\n", stampOr(ksStamp, ksErr), stampOr(refStamp, refErr))
		// kubesim's failures grouped by reason, and whether the reference
		// failed the same test.
		groups := map[string][]string{}
		for _, n := range names {
			if r := lookup(ks, n); ksErr == nil && r.outcome == "failed" {
				groups[r.reason] = append(groups[r.reason], n)
			}
		}
		keys := make([]string, 0, len(groups))
		for k := range groups {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return len(groups[keys[i]]) > len(groups[keys[j]]) || (len(groups[keys[i]]) == len(groups[keys[j]]) && keys[i] < keys[j])
		})
		sb.WriteString("### kubesim's failures, grouped by reason\n\n")
		if len(keys) == 0 {
			sb.WriteString("None.\n")
		}
		for _, k := range keys {
			fmt.Fprintf(&sb, "- **%s** (%d)\n", k, len(groups[k]))
			for _, n := range groups[k] {
				refOutcome := "-"
				if refErr == nil {
					refOutcome = lookup(ref, n).outcome
				}
				fmt.Fprintf(&sb, "  - %s (reference: %s)\n", n, refOutcome)
			}
		}
		sb.WriteString("\n### Every test\n\n| test | kubesim | reference |\n|---|---|---|\n")
		for _, n := range names {
			k, r := result{outcome: "-"}, result{outcome: "-"}
			if ksErr == nil {
				k = lookup(ks, n)
			}
			if refErr == nil {
				r = lookup(ref, n)
			}
			fmt.Fprintf(&sb, "| %s | %s | %s |\n", strings.ReplaceAll(n, "|", `\|`), k.outcome, r.outcome)
		}
		sections = append(sections, sb.String())
	}
	skips := map[string]int{}
	nskip := 0
	for _, e := range list {
		if e.decision == "skip" {
			skips[e.reason]++
			nskip++
		}
	}
	fmt.Fprintf(&b, "| **skipped by the list** | %d | %d |\n\n", nskip, nskip)
	for _, s := range sections {
		b.WriteString(s)
		b.WriteString("\n")
	}
	b.WriteString("## Skipped, by reason\n\n")
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

// countCell is a count, or "-" for a report that is missing.
func countCell(n int, err error) string {
	if err != nil {
		return "-"
	}
	return strconv.Itoa(n)
}

func stampOr(stamp string, err error) string {
	if err != nil {
		return "none (" + err.Error() + ")"
	}
	return stamp
}
