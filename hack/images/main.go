// Command images builds, without a docker daemon or a registry, the container
// images the pinned upstream e2e suite's [Conformance] tests run on a real
// node, as docker-archive tarballs that `ctr -n k8s.io images import FILE`
// imports under their names:
//
//	go run ./hack/images -out DIR
//
// No registry is reachable here, so the images are assembled from local
// inputs, for linux/amd64, under exactly the names the pinned suite asks for
// (k8s.io/kubernetes test/utils/image/manifest.go; checked at run time):
//
//   - pause.tar, registry.k8s.io/pause:3.10.2: build/pause/linux/pause.c of
//     the pinned k8s.io/kubernetes module, compiled with gcc -static as
//     upstream's build/pause/Makefile does; config as its Dockerfile
//     (USER 65535:65535, ENTRYPOINT ["/pause"]).
//   - busybox.tar, e2e-test-images/busybox:1.37.0-2: the host's static
//     busybox (Debian's busybox-static) at /bin/busybox with a symlink per
//     applet (at its own path and in /bin, as docker's busybox image has
//     them), Debian's bash as /bin/sh (see shellTools), /etc/passwd and
//     /etc/group (root, nobody), /tmp and /root; CMD ["sh"]. Every other
//     image but pause is built on this rootfs.
//   - agnhost.tar, e2e-test-images/agnhost:2.66.1: a static build of
//     k8s.io/kubernetes/test/images/agnhost at the pinned version, plus what
//     upstream's test/images/agnhost/Dockerfile adds that can be made
//     offline: the tools its alpine base gets (agnhostTools: Debian's dig,
//     curl, nc, socat, ip, getent, with their libraries), /agnhost-2,
//     /uploads, the porter certificate, the image-defined user and group, the
//     exposed ports; ENTRYPOINT ["/agnhost"], CMD ["pause"].
//   - agnhost-prev.tar (agnhost:2.55), kitten.tar and nautilus.tar (1.8):
//     the same agnhost, with a label of its own, or with upstream's html/
//     files and CMD ["test-webserver"].
//   - glibc-dns-testing.tar (2.1.1): the rootfs with the same tools.
//   - nonroot.tar (1.5, USER 1234) and nonewprivs.tar (1.4, nnp.go built
//     static, setuid root), as upstream's Dockerfiles.
//   - nginx.tar and nginx-new.tar (nginx:1.27.0-2, 1.28.0-2): stand-ins,
//     busybox's httpd on port 80 serving /usr/share/nginx/html.
//
// Layers are owned by root and have fixed timestamps, so a rebuild from the
// same inputs gives the same digests. An image is rebuilt only when its
// tarball is missing or the stamp of its inputs (DIR/NAME.tar.stamp) differs.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	pauseRef   = "registry.k8s.io/pause:3.10.2"
	busyboxRef = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"
	agnhostRef = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"

	// The other images the [Conformance] tests of the pinned suite run.
	agnhostPrevRef = "registry.k8s.io/e2e-test-images/agnhost:2.55"
	nginxRef       = "registry.k8s.io/e2e-test-images/nginx:1.27.0-2"
	nginxNewRef    = "registry.k8s.io/e2e-test-images/nginx:1.28.0-2"
	nonrootRef     = "registry.k8s.io/e2e-test-images/nonroot:1.5"
	nonewprivsRef  = "registry.k8s.io/e2e-test-images/nonewprivs:1.4"
	kittenRef      = "registry.k8s.io/e2e-test-images/kitten:1.8"
	nautilusRef    = "registry.k8s.io/e2e-test-images/nautilus:1.8"

	// busyboxBin is the static busybox of Debian's busybox-static package.
	busyboxBin = "/bin/busybox"

	// builderVersion is part of every stamp: bump it when a change to this
	// program changes the images it makes.
	builderVersion = "5"

	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// epoch is the timestamp of every file, history entry and config.
var epoch = time.Unix(0, 0).UTC()

func main() {
	log.SetFlags(0)
	log.SetPrefix("images: ")
	out := flag.String("out", "", "directory to write the image tarballs to (created if missing)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		log.Fatal("usage: go run ./hack/images -out DIR")
	}
	results, err := buildAll(context.Background(), *out)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		log.Print(r)
	}
	built, err := writeBundle(*out, results)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%s: %s", filepath.Join(*out, bundleFile), map[bool]string{true: "built", false: "up to date"}[built])
}

// bundleFile is every image in one docker-archive tarball, each layer once:
// what a real node imports at start, with one `ctr images import` instead
// of one per image, reading and hashing the agnhost layers (~48 MB, shared
// by four images) once.
const bundleFile = "all-images.bundle"

// writeBundle writes outDir/bundleFile from the image tarballs of results,
// unless its stamp (every image's name and digest) is unchanged. It
// reports whether it wrote it.
func writeBundle(outDir string, results []result) (bool, error) {
	file := filepath.Join(outDir, bundleFile)
	inputs := []string{"builder=" + builderVersion}
	for _, r := range results {
		inputs = append(inputs, r.Ref+"@"+r.Digest)
	}
	if old, err := readStamp(file + ".stamp"); err == nil && equal(old.Inputs, inputs) {
		if _, err := os.Stat(file); err == nil {
			return false, nil
		}
	}
	refs := map[name.Reference]v1.Image{}
	for _, r := range results {
		tag, err := name.NewTag(r.Ref)
		if err != nil {
			return false, err
		}
		img, err := tarball.ImageFromPath(r.File, &tag)
		if err != nil {
			return false, fmt.Errorf("%s: %w", r.File, err)
		}
		refs[tag] = img
	}
	partial := file + ".partial"
	if err := tarball.MultiRefWriteToFile(partial, refs); err != nil {
		os.Remove(partial)
		return false, err
	}
	if err := os.Rename(partial, file); err != nil {
		return false, err
	}
	return true, writeStamp(file+".stamp", stamp{Inputs: inputs})
}

// result describes one image tarball after buildAll.
type result struct {
	Ref    string
	File   string
	Built  bool   // false: the tarball was up to date
	Digest string // manifest digest
	ID     string // config digest (the image ID)
}

func (r result) String() string {
	status := "up to date"
	if r.Built {
		status = "built"
	}
	return fmt.Sprintf("%s: %s %s (id %s, digest %s)", r.Ref, status, r.File, r.ID, r.Digest)
}

// stamp is what DIR/NAME.tar.stamp holds: the inputs an image was built
// from, and its digests for the "up to date" line.
type stamp struct {
	Inputs []string `json:"inputs"`
	Digest string   `json:"digest"`
	ID     string   `json:"id"`
}

// env is what the image builds need to know about the toolchain and the
// pinned k8s.io/kubernetes module.
type env struct {
	goBin       string
	goVersion   string
	kubeVersion string
	kubeDir     string

	// agnhost holds agnhost's layers once built: four images share them.
	agnhost []v1.Layer
}

// imageSpec is one image: its tarball name, its reference, the inputs that
// decide whether to rebuild it, and how to build it.
type imageSpec struct {
	file   string
	ref    string
	inputs func(ctx context.Context, e *env) ([]string, error)
	build  func(ctx context.Context, e *env, tmp string) (v1.Image, error)
}

var images = []imageSpec{
	{file: "pause.tar", ref: pauseRef, inputs: pauseInputs, build: buildPause},
	{file: "busybox.tar", ref: busyboxRef, inputs: busyboxInputs, build: buildBusybox},
	{file: "agnhost.tar", ref: agnhostRef, inputs: agnhostInputs, build: buildAgnhost},
	{file: "agnhost-prev.tar", ref: agnhostPrevRef, inputs: agnhostInputs, build: buildAgnhostPrev},
	{file: "nginx.tar", ref: nginxRef, inputs: busyboxInputs, build: buildNginx(nginxRef)},
	{file: "nginx-new.tar", ref: nginxNewRef, inputs: busyboxInputs, build: buildNginx(nginxNewRef)},
	{file: "glibc-dns-testing.tar", ref: glibcDNSTestingRef, inputs: glibcInputs, build: buildGlibcDNSTesting},
	{file: "nonroot.tar", ref: nonrootRef, inputs: busyboxInputs, build: buildNonroot},
	{file: "nonewprivs.tar", ref: nonewprivsRef, inputs: nonewprivsInputs, build: buildNonewprivs},
	{file: "kitten.tar", ref: kittenRef, inputs: htmlInputs("kitten"), build: buildHTMLImage("kitten")},
	{file: "nautilus.tar", ref: nautilusRef, inputs: htmlInputs("nautilus"), build: buildHTMLImage("nautilus")},
}

// buildAll writes every image tarball to outDir that is missing or whose
// inputs changed, and reports on each.
func buildAll(ctx context.Context, outDir string) ([]result, error) {
	e, err := newEnv(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkPinnedNames(e.kubeDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	var results []result
	for _, spec := range images {
		r, err := buildOne(ctx, e, spec, outDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.ref, err)
		}
		results = append(results, r)
	}
	return results, nil
}

func buildOne(ctx context.Context, e *env, spec imageSpec, outDir string) (result, error) {
	file := filepath.Join(outDir, spec.file)
	stampFile := file + ".stamp"
	r := result{Ref: spec.ref, File: file}

	inputs, err := spec.inputs(ctx, e)
	if err != nil {
		return r, err
	}
	inputs = append([]string{"builder=" + builderVersion, "ref=" + spec.ref}, inputs...)
	if old, err := readStamp(stampFile); err == nil && equal(old.Inputs, inputs) {
		if _, err := os.Stat(file); err == nil {
			r.Digest, r.ID = old.Digest, old.ID
			return r, nil
		}
	}

	tmp, err := os.MkdirTemp("", "kubesim-images-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(tmp)
	img, err := spec.build(ctx, e, tmp)
	if err != nil {
		return r, err
	}
	tag, err := name.NewTag(spec.ref)
	if err != nil {
		return r, err
	}
	// Write next to the destination and rename, so that an interrupted
	// build never leaves a partial tarball under the final name.
	partial := file + ".partial"
	if err := tarball.WriteToFile(partial, tag, img); err != nil {
		os.Remove(partial)
		return r, err
	}
	if err := os.Rename(partial, file); err != nil {
		return r, err
	}
	digest, err := img.Digest()
	if err != nil {
		return r, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return r, err
	}
	r.Built, r.Digest, r.ID = true, digest.String(), id.String()
	if err := writeStamp(stampFile, stamp{Inputs: inputs, Digest: r.Digest, ID: r.ID}); err != nil {
		return r, err
	}
	return r, nil
}

func readStamp(file string) (stamp, error) {
	var s stamp
	b, err := os.ReadFile(file)
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(b, &s)
	return s, err
}

func writeStamp(file string, s stamp) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(file+".partial", append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(file+".partial", file)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func newEnv(ctx context.Context) (*env, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go command is needed to build agnhost: %w", err)
	}
	e := &env{goBin: goBin}
	if e.goVersion, err = output(ctx, nil, goBin, "env", "GOVERSION"); err != nil {
		return nil, err
	}
	mod, err := output(ctx, nil, goBin, "list", "-m", "-f", "{{.Version}} {{.Dir}}", "k8s.io/kubernetes")
	if err != nil {
		return nil, err
	}
	version, dir, ok := strings.Cut(mod, " ")
	if !ok || dir == "" {
		return nil, fmt.Errorf("go list -m k8s.io/kubernetes: unexpected output %q (module not downloaded?)", mod)
	}
	e.kubeVersion, e.kubeDir = version, dir
	return e, nil
}

// checkPinnedNames makes sure the names built here are still those the
// pinned e2e suite asks for, so a k8s.io/kubernetes bump cannot leave the
// node with images nobody pulls.
func checkPinnedNames(kubeDir string) error {
	b, err := os.ReadFile(filepath.Join(kubeDir, "test/utils/image/manifest.go"))
	if err != nil {
		return err
	}
	src := string(b)
	registries := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(\w+Registry):\s+"([^"]+)",`).FindAllStringSubmatch(src, -1) {
		if _, seen := registries[m[1]]; !seen { // the defaults come first
			registries[m[1]] = m[2]
		}
	}
	want := map[string]string{
		"Pause": pauseRef, "BusyBox": busyboxRef, "Agnhost": agnhostRef, "AgnhostPrev": agnhostPrevRef,
		"Nginx": nginxRef, "NginxNew": nginxNewRef, "NonRoot": nonrootRef, "Nonewprivs": nonewprivsRef,
		"Kitten": kittenRef, "Nautilus": nautilusRef, "GlibcDnsTesting": glibcDNSTestingRef,
	}
	for id, ref := range want {
		re := regexp.MustCompile(`configs\[` + id + `\] = Config\{list\.(\w+), "([^"]+)", "([^"]+)"\}`)
		m := re.FindStringSubmatch(src)
		if m == nil {
			return fmt.Errorf("manifest.go: no image config for %s", id)
		}
		if got := registries[m[1]] + "/" + m[2] + ":" + m[3]; got != ref {
			return fmt.Errorf("the pinned e2e suite asks for %s as %s, this program builds %s: update hack/images", id, got, ref)
		}
	}
	return nil
}

// pause

const pauseCFLAGS = "-Os -Wall -Werror -static -DVERSION=v3.10.2"

func pauseSource(e *env) string { return filepath.Join(e.kubeDir, "build/pause/linux/pause.c") }

func pauseInputs(ctx context.Context, e *env) ([]string, error) {
	sum, err := fileSHA256(pauseSource(e))
	if err != nil {
		return nil, err
	}
	gcc, err := output(ctx, nil, "gcc", "--version")
	if err != nil {
		return nil, err
	}
	gcc, _, _ = strings.Cut(gcc, "\n")
	return []string{"pause.c=" + sum, "cflags=" + pauseCFLAGS, "gcc=" + gcc}, nil
}

func buildPause(ctx context.Context, e *env, tmp string) (v1.Image, error) {
	bin := filepath.Join(tmp, "pause")
	args := append(strings.Fields(pauseCFLAGS), "-o", bin, pauseSource(e))
	if _, err := output(ctx, nil, "gcc", args...); err != nil {
		return nil, err
	}
	if _, err := output(ctx, nil, "strip", bin); err != nil {
		return nil, err
	}
	data, err := readStatic(bin)
	if err != nil {
		return nil, err
	}
	var l layerWriter
	l.file("pause", 0o755, data)
	layer, err := l.layer()
	if err != nil {
		return nil, err
	}
	return newImage(v1.Config{
		User:       "65535:65535",
		Env:        []string{defaultPath},
		Entrypoint: []string{"/pause"},
	}, layer)
}

// busybox

// shellTools is the shell of every image: Debian's bash, as /bin/sh and
// /bin/bash. Debian's static busybox (1.35) has two ways its ash differs
// from the sh of upstream's images (busybox 1.37 for busybox, alpine's for
// agnhost) that e2e tests see: it prefers its own applets to PATH in a
// shell's forked commands ("echo x | nc -v ..." runs busybox's nc, which has
// no -v), and it drops environment variables whose names are not shell
// names (envFrom with prefixes such as "1-"), which upstream's keeps. Bash
// does neither. The applets stay busybox's.
var shellTools = []hostTool{{"/usr/bin/bash", "bash"}}

func busyboxInputs(ctx context.Context, _ *env) ([]string, error) {
	sum, err := fileSHA256(busyboxBin)
	if err != nil {
		return nil, err
	}
	sh, err := toolsInputs(ctx, shellTools)
	if err != nil {
		return nil, err
	}
	return append([]string{"busybox=" + sum}, sh...), nil
}

var (
	rootPasswd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	rootGroup  = "root:x:0:\nnobody:x:65534:\n"
)

// busyboxLayer is the rootfs shared by the busybox and agnhost images.
func busyboxLayer(ctx context.Context) (v1.Layer, error) {
	data, err := readStatic(busyboxBin)
	if err != nil {
		return nil, err
	}
	list, err := output(ctx, nil, busyboxBin, "--list-full")
	if err != nil {
		return nil, err
	}
	applets := strings.Fields(list)
	sort.Strings(applets)
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list-full listed no applets", busyboxBin)
	}
	sh, err := toolFiles(ctx, shellTools)
	if err != nil {
		return nil, err
	}
	var l layerWriter
	l.file("bin/busybox", 0o755, data)
	for _, a := range applets {
		a = strings.TrimPrefix(path.Clean("/"+a), "/")
		if a == "bin/busybox" || a == "bin/sh" || a == "bin/bash" {
			continue
		}
		// Relative, so the links also resolve in an unpacked rootfs.
		target, err := filepath.Rel(path.Dir(a), "bin/busybox")
		if err != nil {
			return nil, err
		}
		l.symlink(a, filepath.ToSlash(target))
	}
	// Upstream's busybox image (docker's) has every applet in /bin, and
	// tests run them there (/bin/sysctl, /bin/hostname).
	inBin := map[string]bool{}
	for _, a := range applets {
		inBin[strings.TrimPrefix(path.Clean("/"+a), "/")] = true
	}
	for _, a := range applets {
		b := "bin/" + path.Base(a)
		if inBin[b] || b == "bin/sh" || b == "bin/bash" {
			continue
		}
		inBin[b] = true
		l.symlink(b, "busybox")
	}
	var keys []string
	for k := range sh {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l.file(k, 0o755, sh[k])
	}
	l.symlink("bin/sh", "../usr/local/bin/bash")
	l.symlink("bin/bash", "../usr/local/bin/bash")
	l.file("etc/passwd", 0o644, []byte(rootPasswd))
	l.file("etc/group", 0o644, []byte(rootGroup))
	l.dir("root", 0o700)
	l.dir("tmp", 0o1777)
	return l.layer()
}

func buildBusybox(ctx context.Context, _ *env, _ string) (v1.Image, error) {
	layer, err := busyboxLayer(ctx)
	if err != nil {
		return nil, err
	}
	return newImage(v1.Config{
		Env: []string{defaultPath},
		Cmd: []string{"sh"},
	}, layer)
}

// agnhost

const agnhostPkg = "k8s.io/kubernetes/test/images/agnhost"

// agnhostBuildEnv is the environment of the agnhost build and of the go list
// that stamps its dependencies.
var agnhostBuildEnv = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}

func agnhostInputs(ctx context.Context, e *env) ([]string, error) {
	bb, err := fileSHA256(busyboxBin)
	if err != nil {
		return nil, err
	}
	// The module versions agnhost is built from: k8s.io/kubernetes itself
	// and whatever this module's go.mod selects for its dependencies.
	mods, err := output(ctx, agnhostBuildEnv, e.goBin, "list", "-deps",
		"-f", "{{with .Module}}{{.Path}}@{{.Version}}{{with .Replace}}=>{{.Path}}@{{.Version}}{{end}}{{end}}", agnhostPkg)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range strings.Fields(mods) {
		seen[m] = true
	}
	var list []string
	for m := range seen {
		list = append(list, m)
	}
	sort.Strings(list)
	h := sha256.Sum256([]byte(strings.Join(list, "\n")))
	tools, err := toolsInputs(ctx, agnhostTools)
	if err != nil {
		return nil, err
	}
	return append([]string{
		"go=" + e.goVersion,
		"k8s.io/kubernetes=" + e.kubeVersion,
		"modules=" + hex.EncodeToString(h[:]),
		"busybox=" + bb,
	}, tools...), nil
}

// agnhostPasswd and agnhostGroup add what upstream's Dockerfile creates with
// adduser/addgroup for the SupplementalGroups e2e test.
var (
	agnhostPasswd = rootPasswd + "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"
	agnhostGroup  = rootGroup + "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"
)

// agnhostTools are the programs upstream's Dockerfile adds to agnhost's
// alpine base (apk add bind-tools curl netcat-openbsd iproute2 bash socat),
// which e2e tests exec in agnhost pods (dig in the DNS tests, nc and curl in
// the Service tests): the host's Debian builds (make realnode-deps installs
// bind9-dnsutils, curl, netcat-openbsd, iproute2, bash and socat), each with
// the shared libraries ldd lists, under /usr/local/bin, ahead of busybox's
// applets in PATH. iperf is left out (no [Conformance] test runs it).
//
// (/bin/sh is bash, in every image: see shellTools.)
type hostTool struct{ host, name string }

var agnhostTools = []hostTool{
	{"/usr/bin/dig", "dig"},
	{"/usr/bin/nslookup", "nslookup"},
	{"/usr/bin/host", "host"},
	{"/usr/bin/curl", "curl"},
	{"/usr/bin/nc.openbsd", "nc"},
	{"/usr/bin/socat", "socat"},
	{"/usr/sbin/ip", "ip"},
	{"/usr/bin/getent", "getent"}, // alpine's musl-utils; the DNS tests run it
}

// toolFiles are the files of agnhostTools: each program and every shared
// library it loads, keyed by the path it has in the image.
func toolFiles(ctx context.Context, tools []hostTool) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, t := range tools {
		b, err := os.ReadFile(t.host)
		if err != nil {
			return nil, fmt.Errorf("%w (make realnode-deps installs it)", err)
		}
		files["usr/local/bin/"+t.name] = b
		out, err := output(ctx, nil, "ldd", t.host)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(out, "\n") {
			// "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
			// "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
			f := strings.Fields(line)
			var lib string
			switch {
			case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
				lib = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				lib = f[0]
			default:
				continue
			}
			key := strings.TrimPrefix(path.Clean(lib), "/")
			if _, ok := files[key]; ok {
				continue
			}
			b, err := os.ReadFile(lib) // follows the soname link
			if err != nil {
				return nil, err
			}
			files[key] = b
		}
	}
	return files, nil
}

func toolsInputs(ctx context.Context, tools []hostTool) ([]string, error) {
	files, err := toolFiles(ctx, tools)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		sum := sha256.Sum256(files[k])
		fmt.Fprintf(h, "%s %x\n", k, sum)
	}
	return []string{"tools=" + hex.EncodeToString(h.Sum(nil))}, nil
}

// toolsLayer holds agnhostTools.
func toolsLayer(ctx context.Context) (v1.Layer, error) {
	tools, err := toolFiles(ctx, agnhostTools)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range tools {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var l layerWriter
	for _, k := range keys {
		l.file(k, 0o755, tools[k])
	}
	return l.layer()
}

// agnhostLayers are the layers of the agnhost image: the busybox rootfs,
// the tools, then agnhost with what upstream's Dockerfile adds.
func agnhostLayers(ctx context.Context, e *env, tmp string) ([]v1.Layer, error) {
	if e.agnhost != nil {
		return e.agnhost, nil
	}
	version, err := os.ReadFile(filepath.Join(e.kubeDir, "test/images/agnhost/VERSION"))
	if err != nil {
		return nil, err
	}
	if v := strings.TrimSpace(string(version)); !strings.HasSuffix(agnhostRef, ":"+v) {
		return nil, fmt.Errorf("test/images/agnhost/VERSION is %s, this program builds %s", v, agnhostRef)
	}
	bin := filepath.Join(tmp, "agnhost")
	// As upstream's test/images/image-util.sh, plus -trimpath so the binary
	// does not depend on where the module cache is.
	if _, err := output(ctx, agnhostBuildEnv, e.goBin, "build", "-trimpath",
		"-ldflags", "-w -X main.Version="+strings.TrimSpace(string(version)),
		"-o", bin, agnhostPkg); err != nil {
		return nil, err
	}
	data, err := readStatic(bin)
	if err != nil {
		return nil, err
	}
	porter := filepath.Join(e.kubeDir, "test/images/agnhost/porter")
	crt, err := os.ReadFile(filepath.Join(porter, "localhost.crt"))
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(porter, "localhost.key"))
	if err != nil {
		return nil, err
	}
	tools, err := toolsLayer(ctx)
	if err != nil {
		return nil, err
	}
	base, err := busyboxLayer(ctx)
	if err != nil {
		return nil, err
	}
	var l layerWriter
	l.file("agnhost", 0o755, data)
	l.symlink("agnhost-2", "agnhost")
	l.file("localhost.crt", 0o644, crt)
	l.file("localhost.key", 0o644, key)
	l.dir("uploads", 0o755)
	l.file("etc/passwd", 0o644, []byte(agnhostPasswd))
	l.file("etc/group", 0o644, []byte(agnhostGroup))
	l.dir("home/user-defined-in-image", 0o755)
	top, err := l.layer()
	if err != nil {
		return nil, err
	}
	e.agnhost = []v1.Layer{base, tools, top}
	return e.agnhost, nil
}

func agnhostConfig() v1.Config {
	ports := map[string]struct{}{}
	for _, p := range []string{"80", "8080", "8081", "9376", "5000"} {
		ports[p+"/tcp"] = struct{}{}
	}
	return v1.Config{
		Env:          []string{defaultPath},
		Entrypoint:   []string{"/agnhost"},
		Cmd:          []string{"pause"},
		ExposedPorts: ports,
	}
}

func buildAgnhost(ctx context.Context, e *env, tmp string) (v1.Image, error) {
	layers, err := agnhostLayers(ctx, e, tmp)
	if err != nil {
		return nil, err
	}
	return newImage(agnhostConfig(), layers...)
}

// buildAgnhostPrev is the "previous" agnhost tests update from
// (AgnhostPrev: StatefulSet and Deployment image updates): the pinned agnhost
// again, with a label of its own so that its image ID differs, as the two
// upstream releases' do.
func buildAgnhostPrev(ctx context.Context, e *env, tmp string) (v1.Image, error) {
	layers, err := agnhostLayers(ctx, e, tmp)
	if err != nil {
		return nil, err
	}
	cfg := agnhostConfig()
	cfg.Labels = map[string]string{"io.kubesim.stands-in-for": agnhostPrevRef}
	return newImage(cfg, layers...)
}

// nginx

// nginxIndex is the page upstream's nginx image serves.
const nginxIndex = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
</body>
</html>
`

// nginxEntrypoint runs busybox's httpd as the web server, and exits at once
// on SIGTERM or SIGQUIT (nginx's stop signal), as nginx does; a shell
// without the trap would, as PID 1, ignore them for the whole grace period.
const nginxEntrypoint = `#!/bin/sh
httpd -f -v -p 80 -h /usr/share/nginx/html &
trap 'kill $! 2>/dev/null; exit 0' TERM QUIT INT
wait
`

// buildNginx is a stand-in for upstream's nginx e2e image (a mirror of
// nginx:1.2x-alpine; no registry is reachable here): busybox's httpd on port
// 80 serving /usr/share/nginx/html, as nginx's default site does. The
// [Conformance] tests that run it need a container that starts, serves port
// 80 and stops on its stop signal.
func buildNginx(ref string) func(ctx context.Context, e *env, tmp string) (v1.Image, error) {
	return func(ctx context.Context, _ *env, _ string) (v1.Image, error) {
		base, err := busyboxLayer(ctx)
		if err != nil {
			return nil, err
		}
		var l layerWriter
		l.file("docker-entrypoint.sh", 0o755, []byte(nginxEntrypoint))
		l.file("usr/share/nginx/html/index.html", 0o644, []byte(nginxIndex))
		l.file("usr/share/nginx/html/50x.html", 0o644, []byte("<html><body><h1>An error occurred.</h1></body></html>\n"))
		top, err := l.layer()
		if err != nil {
			return nil, err
		}
		return newImage(v1.Config{
			Env:          []string{defaultPath},
			Entrypoint:   []string{"/docker-entrypoint.sh"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}},
			StopSignal:   "SIGQUIT",
			Labels:       map[string]string{"io.kubesim.stands-in-for": ref},
		}, base, top)
	}
}

// glibc-dns-testing: upstream's test/images/glibc-dns-testing is Debian with
// dnsutils, for the DNS tests' glibc prober (dig, getent); here the busybox
// rootfs and the same Debian tools layer as agnhost's.
const glibcDNSTestingRef = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1"

func glibcInputs(ctx context.Context, e *env) ([]string, error) {
	bb, err := busyboxInputs(ctx, e)
	if err != nil {
		return nil, err
	}
	tools, err := toolsInputs(ctx, agnhostTools)
	if err != nil {
		return nil, err
	}
	return append(bb, tools...), nil
}

func buildGlibcDNSTesting(ctx context.Context, _ *env, _ string) (v1.Image, error) {
	base, err := busyboxLayer(ctx)
	if err != nil {
		return nil, err
	}
	tools, err := toolsLayer(ctx)
	if err != nil {
		return nil, err
	}
	return newImage(v1.Config{Env: []string{defaultPath}, Cmd: []string{"bash"}}, base, tools)
}

// nonroot: upstream's test/images/nonroot (USER 1234 on a base image).
func buildNonroot(ctx context.Context, _ *env, _ string) (v1.Image, error) {
	base, err := busyboxLayer(ctx)
	if err != nil {
		return nil, err
	}
	return newImage(v1.Config{Env: []string{defaultPath}, Cmd: []string{"sh"}, User: "1234"}, base)
}

// nonewprivs: upstream's test/images/nonewprivs, nnp.go built static and
// installed setuid root at /usr/local/bin/nnp.
const nonewprivsPkg = "k8s.io/kubernetes/test/images/nonewprivs"

func nonewprivsInputs(ctx context.Context, e *env) ([]string, error) {
	bb, err := busyboxInputs(ctx, e)
	if err != nil {
		return nil, err
	}
	src, err := fileSHA256(filepath.Join(e.kubeDir, "test/images/nonewprivs/nnp.go"))
	if err != nil {
		return nil, err
	}
	return append(bb, "go="+e.goVersion, "nnp.go="+src), nil
}

func buildNonewprivs(ctx context.Context, e *env, tmp string) (v1.Image, error) {
	bin := filepath.Join(tmp, "nnp")
	if _, err := output(ctx, agnhostBuildEnv, e.goBin, "build", "-trimpath", "-ldflags", "-w", "-o", bin, nonewprivsPkg); err != nil {
		return nil, err
	}
	data, err := readStatic(bin)
	if err != nil {
		return nil, err
	}
	base, err := busyboxLayer(ctx)
	if err != nil {
		return nil, err
	}
	var l layerWriter
	l.file("usr/local/bin/nnp", 0o4755, data)
	top, err := l.layer()
	if err != nil {
		return nil, err
	}
	return newImage(v1.Config{Env: []string{defaultPath}, Cmd: []string{"nnp"}}, base, top)
}

// kitten and nautilus: upstream's test/images/{kitten,nautilus}, agnhost's
// test-webserver serving the image's html/ files from /.
func htmlInputs(name string) func(ctx context.Context, e *env) ([]string, error) {
	return func(ctx context.Context, e *env) ([]string, error) {
		in, err := agnhostInputs(ctx, e)
		if err != nil {
			return nil, err
		}
		for _, f := range []string{name + ".jpg", "data.json"} {
			sum, err := fileSHA256(filepath.Join(e.kubeDir, "test/images", name, "html", f))
			if err != nil {
				return nil, err
			}
			in = append(in, f+"="+sum)
		}
		return in, nil
	}
}

func buildHTMLImage(name string) func(ctx context.Context, e *env, tmp string) (v1.Image, error) {
	return func(ctx context.Context, e *env, tmp string) (v1.Image, error) {
		layers, err := agnhostLayers(ctx, e, tmp)
		if err != nil {
			return nil, err
		}
		var l layerWriter
		for _, f := range []string{name + ".jpg", "data.json"} {
			b, err := os.ReadFile(filepath.Join(e.kubeDir, "test/images", name, "html", f))
			if err != nil {
				return nil, err
			}
			l.file(f, 0o644, b)
		}
		top, err := l.layer()
		if err != nil {
			return nil, err
		}
		cfg := agnhostConfig()
		cfg.Cmd = []string{"test-webserver"}
		return newImage(cfg, append(layers, top)...)
	}
}

// image assembly

// newImage is a linux/amd64 docker image of the given config and layers.
func newImage(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "hack/images"},
		})
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// layerWriter builds a layer tarball in memory: every entry owned by root
// with the fixed timestamp, parent directories added as needed.
type layerWriter struct {
	buf  bytes.Buffer
	tw   *tar.Writer
	dirs map[string]bool
	err  error
}

func (l *layerWriter) write(hdr *tar.Header, data []byte) {
	if l.tw == nil {
		l.tw = tar.NewWriter(&l.buf)
		l.dirs = map[string]bool{}
	}
	if l.err != nil {
		return
	}
	if dir := path.Dir(strings.TrimSuffix(hdr.Name, "/")); dir != "." && !l.dirs[dir] {
		l.dir(dir, 0o755)
	}
	hdr.ModTime = epoch
	hdr.Uname, hdr.Gname = "root", "root"
	hdr.Format = tar.FormatPAX
	if l.err = l.tw.WriteHeader(hdr); l.err == nil && len(data) > 0 {
		_, l.err = l.tw.Write(data)
	}
}

func (l *layerWriter) dir(name string, mode int64) {
	l.write(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}, nil)
	l.dirs[name] = true
}

func (l *layerWriter) file(name string, mode int64, data []byte) {
	l.write(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data)
}

func (l *layerWriter) symlink(name, target string) {
	l.write(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil)
}

// layer closes the tarball and returns it, gzipped here (no name, no mtime)
// rather than by go-containerregistry, so the digest depends only on the
// contents and the Go version's compress/gzip.
func (l *layerWriter) layer() (v1.Layer, error) {
	if l.tw == nil {
		return nil, errors.New("empty layer")
	}
	if l.err != nil {
		return nil, l.err
	}
	if err := l.tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(l.buf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

// helpers

// output runs a command and returns its trimmed standard output; on failure
// the error carries its standard error.
func output(ctx context.Context, extraEnv []string, cmd string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, cmd, args...)
	if extraEnv != nil {
		c.Env = append(os.Environ(), extraEnv...)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", cmd, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

func fileSHA256(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// readStatic reads an executable after checking that it is a statically
// linked x86-64 ELF, the only kind that runs in these base-less images.
func readStatic(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%s: is %s, want x86-64", file, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s: is dynamically linked", file)
		}
	}
	return b, nil
}
