package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is what the flattened filesystem of an image must hold at a path.
type entry struct {
	typ      byte
	mode     int64  // permission bits, if not 0
	link     string // symlink target, for tar.TypeSymlink
	contains string // part of the content, for tar.TypeReg
}

func TestBuildAll(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is needed to build the pause image: ", err)
	}
	if _, err := os.Stat(busyboxBin); err != nil {
		t.Skip("the busybox and agnhost images need Debian's busybox-static at ", busyboxBin, ": ", err)
	}
	ctx := context.Background()
	out := t.TempDir()

	first, err := buildAll(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(images) {
		t.Fatalf("got %d results, want %d", len(first), len(images))
	}
	ids := map[string]string{}
	for _, r := range first {
		if !r.Built {
			t.Errorf("%s: first build into an empty directory reported up to date", r.Ref)
		}
		if other, ok := ids[r.ID]; ok {
			// Tests that update a pod from one image to another (agnhost
			// 2.55 to 2.66.1, nginx to nginx-new) need them to differ.
			t.Errorf("%s and %s have the same image ID %s", other, r.Ref, r.ID)
		}
		ids[r.ID] = r.Ref
	}

	for _, tc := range []struct {
		file       string
		ref        string
		entrypoint []string
		cmd        []string
		user       string
		ports      []string
		files      map[string]entry
	}{
		{
			file:       "pause.tar",
			ref:        "registry.k8s.io/pause:3.10.2",
			entrypoint: []string{"/pause"},
			user:       "65535:65535",
			files: map[string]entry{
				"pause": {typ: tar.TypeReg, mode: 0o755},
			},
		},
		{
			file: "busybox.tar",
			ref:  "registry.k8s.io/e2e-test-images/busybox:1.37.0-2",
			cmd:  []string{"sh"},
			files: map[string]entry{
				"bin/busybox":  {typ: tar.TypeReg, mode: 0o755},
				"bin/sh":       {typ: tar.TypeSymlink, link: "../usr/local/bin/bash"}, // see shellTools
				"usr/bin/wget": {typ: tar.TypeSymlink, link: "../../bin/busybox"},
				"bin/sysctl":   {typ: tar.TypeSymlink, link: "busybox"}, // docker's busybox: every applet in /bin
				"etc/passwd":   {typ: tar.TypeReg, contains: "nobody:x:65534:65534:"},
				"etc/group":    {typ: tar.TypeReg, contains: "root:x:0:"},
				"tmp":          {typ: tar.TypeDir, mode: 0o1777},
				"root":         {typ: tar.TypeDir, mode: 0o700},
			},
		},
		{
			file:       "agnhost.tar",
			ref:        "registry.k8s.io/e2e-test-images/agnhost:2.66.1",
			entrypoint: []string{"/agnhost"},
			cmd:        []string{"pause"},
			ports:      []string{"5000/tcp", "8080/tcp", "8081/tcp", "80/tcp", "9376/tcp"},
			files: map[string]entry{
				"agnhost":       {typ: tar.TypeReg, mode: 0o755},
				"agnhost-2":     {typ: tar.TypeSymlink, link: "agnhost"},
				"bin/sh":        {typ: tar.TypeSymlink, link: "../usr/local/bin/bash"}, // see shellTools
				"bin/busybox":   {typ: tar.TypeReg},
				"localhost.crt": {typ: tar.TypeReg, contains: "BEGIN CERTIFICATE"},
				"uploads":       {typ: tar.TypeDir},
				"etc/group":     {typ: tar.TypeReg, contains: "group-defined-in-image:x:50000:user-defined-in-image"},
				// What e2e tests exec in agnhost pods, with their libraries.
				"usr/local/bin/dig":              {typ: tar.TypeReg, mode: 0o755},
				"usr/local/bin/curl":             {typ: tar.TypeReg, mode: 0o755},
				"usr/local/bin/nc":               {typ: tar.TypeReg, mode: 0o755},
				"bin/bash":                       {typ: tar.TypeSymlink, link: "../usr/local/bin/bash"},
				"lib64/ld-linux-x86-64.so.2":     {typ: tar.TypeReg},
				"lib/x86_64-linux-gnu/libc.so.6": {typ: tar.TypeReg},
			},
		},
		{
			file:       "agnhost-prev.tar",
			ref:        "registry.k8s.io/e2e-test-images/agnhost:2.55",
			entrypoint: []string{"/agnhost"},
			cmd:        []string{"pause"},
			ports:      []string{"5000/tcp", "8080/tcp", "8081/tcp", "80/tcp", "9376/tcp"},
			files:      map[string]entry{"agnhost": {typ: tar.TypeReg, mode: 0o755}},
		},
		{
			file:       "nginx.tar",
			ref:        "registry.k8s.io/e2e-test-images/nginx:1.27.0-2",
			entrypoint: []string{"/docker-entrypoint.sh"},
			ports:      []string{"80/tcp"},
			files: map[string]entry{
				"docker-entrypoint.sh":            {typ: tar.TypeReg, mode: 0o755, contains: "httpd -f"},
				"usr/share/nginx/html/index.html": {typ: tar.TypeReg, contains: "Welcome to nginx!"},
			},
		},
		{
			file: "nonroot.tar",
			ref:  "registry.k8s.io/e2e-test-images/nonroot:1.5",
			cmd:  []string{"sh"},
			user: "1234",
		},
		{
			file:  "nonewprivs.tar",
			ref:   "registry.k8s.io/e2e-test-images/nonewprivs:1.4",
			cmd:   []string{"nnp"},
			files: map[string]entry{"usr/local/bin/nnp": {typ: tar.TypeReg, mode: 0o4755}},
		},
		{
			file:       "kitten.tar",
			ref:        "registry.k8s.io/e2e-test-images/kitten:1.8",
			entrypoint: []string{"/agnhost"},
			cmd:        []string{"test-webserver"},
			ports:      []string{"5000/tcp", "8080/tcp", "8081/tcp", "80/tcp", "9376/tcp"},
			files:      map[string]entry{"kitten.jpg": {typ: tar.TypeReg}, "data.json": {typ: tar.TypeReg}},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			file := filepath.Join(out, tc.file)
			m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
			if err != nil {
				t.Fatal(err)
			}
			if len(m) != 1 || !reflect.DeepEqual(m[0].RepoTags, []string{tc.ref}) {
				t.Fatalf("manifest.json: got %+v, want one image tagged %s", m, tc.ref)
			}
			tag, err := name.NewTag(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(file, &tag)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform: got %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			c := cf.Config
			if !reflect.DeepEqual(c.Entrypoint, tc.entrypoint) {
				t.Errorf("entrypoint: got %q, want %q", c.Entrypoint, tc.entrypoint)
			}
			if !reflect.DeepEqual(c.Cmd, tc.cmd) {
				t.Errorf("cmd: got %q, want %q", c.Cmd, tc.cmd)
			}
			if c.User != tc.user {
				t.Errorf("user: got %q, want %q", c.User, tc.user)
			}
			if !reflect.DeepEqual(c.Env, []string{defaultPath}) {
				t.Errorf("env: got %q, want %q", c.Env, defaultPath)
			}
			var ports []string
			for p := range c.ExposedPorts {
				ports = append(ports, p)
			}
			if !equalSets(ports, tc.ports) {
				t.Errorf("exposed ports: got %q, want %q", ports, tc.ports)
			}

			got := flatten(t, img)
			for p, want := range tc.files {
				hdr, ok := got[p]
				if !ok {
					t.Errorf("/%s: missing", p)
					continue
				}
				if hdr.Typeflag != want.typ {
					t.Errorf("/%s: type %q, want %q", p, hdr.Typeflag, want.typ)
				}
				if want.mode != 0 && hdr.Mode&0o7777 != want.mode {
					t.Errorf("/%s: mode %#o, want %#o", p, hdr.Mode&0o7777, want.mode)
				}
				if hdr.Typeflag == tar.TypeSymlink && hdr.Linkname != want.link {
					t.Errorf("/%s: -> %s, want -> %s", p, hdr.Linkname, want.link)
				}
				if want.contains != "" && !strings.Contains(hdr.content, want.contains) {
					t.Errorf("/%s: does not contain %q", p, want.contains)
				}
			}
			for p, hdr := range got {
				if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch) {
					t.Errorf("/%s: owner %d:%d, mtime %v; want root and %v", p, hdr.Uid, hdr.Gid, hdr.ModTime, epoch)
				}
			}
		})
	}

	// Nothing changed: nothing is rebuilt.
	second, err := buildAll(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range second {
		if r.Built || r.Digest != first[i].Digest {
			t.Errorf("second run: %s built=%v digest %s; want up to date with digest %s", r.Ref, r.Built, r.Digest, first[i].Digest)
		}
	}

	// The bundle holds every image under its name, with the same digest,
	// and each layer once; it is not rewritten when nothing changed.
	if built, err := writeBundle(out, second); err != nil || !built {
		t.Fatalf("writeBundle into a directory without one: built=%v, %v", built, err)
	}
	bundle := filepath.Join(out, bundleFile)
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(bundle) })
	if err != nil {
		t.Fatal(err)
	}
	layers := map[string]bool{}
	for _, d := range m {
		for _, l := range d.Layers {
			layers[l] = true
		}
	}
	var layerFiles int
	for i, r := range second {
		tag, err := name.NewTag(r.Ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.ImageFromPath(bundle, &tag)
		if err != nil {
			t.Fatalf("%s in the bundle: %v", r.Ref, err)
		}
		if d, err := img.Digest(); err != nil || d.String() != first[i].Digest {
			t.Errorf("%s in the bundle: digest %v (%v), want %s", r.Ref, d, err, first[i].Digest)
		}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		layerFiles += len(ls)
	}
	if len(layers) >= layerFiles {
		t.Errorf("the bundle stores %d layer files for %d image layers: shared layers are not stored once", len(layers), layerFiles)
	}
	if built, err := writeBundle(out, second); err != nil || built {
		t.Errorf("writeBundle with nothing changed: built=%v, %v; want up to date", built, err)
	}

	// Without stamps everything is rebuilt, to the same digests.
	for _, spec := range images {
		if err := os.Remove(filepath.Join(out, spec.file+".stamp")); err != nil {
			t.Fatal(err)
		}
	}
	third, err := buildAll(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range third {
		if !r.Built || r.Digest != first[i].Digest || r.ID != first[i].ID {
			t.Errorf("rebuild: %s built=%v digest %s id %s; want rebuilt with digest %s id %s",
				r.Ref, r.Built, r.Digest, r.ID, first[i].Digest, first[i].ID)
		}
	}
}

type flatEntry struct {
	*tar.Header
	content string
}

// flatten reads the image's flattened filesystem: header (and, for small
// regular files, content) by path.
func flatten(t *testing.T, img v1.Image) map[string]flatEntry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]flatEntry{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		e := flatEntry{Header: hdr}
		if hdr.Typeflag == tar.TypeReg && hdr.Size < 1<<16 {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			e.content = string(b)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "/"), "/")] = e
	}
}

func equalSets(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
