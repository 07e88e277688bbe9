package realnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is where the cgroup v1 hierarchies are mounted.
const cgroupMount = "/sys/fs/cgroup"

// Every process of a real node (its supervisor, containerd, the kubelet,
// kube-proxy, the runc shims and the pods' containers) lives under
// /kubesim/N/NODE in each cgroup v1 hierarchy: the kubelet's cgroupRoot is
// that path, the node's own processes are in its "system" child. Stopping a
// node, or sweeping one whose kubesim was killed, kills what the pids
// hierarchy lists there and removes the tree.

// cgroupPath is cluster n's node's cgroup, relative to each hierarchy.
func cgroupPath(n int, node string) string { return fmt.Sprintf("/kubesim/%d/%s", n, node) }

// hierarchies are the mounted cgroup v1 hierarchies (not the unified one).
func hierarchies() []string {
	entries, err := os.ReadDir(cgroupMount)
	if err != nil {
		return nil
	}
	var hs []string
	for _, e := range entries {
		if e.Name() == "unified" {
			continue
		}
		p := filepath.Join(cgroupMount, e.Name())
		var st syscall.Statfs_t
		if syscall.Statfs(p, &st) == nil && st.Type == 0x27e0eb { // CGROUP_SUPER_MAGIC
			hs = append(hs, p)
		}
	}
	return hs
}

// ensureCgroup creates path in every hierarchy; cpuset levels get their
// parent's cpus and mems, which a new v1 cpuset lacks.
func ensureCgroup(path string) error {
	for _, h := range hierarchies() {
		parts := strings.Split(strings.Trim(path, "/"), "/")
		dir := h
		for _, part := range parts {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			if filepath.Base(h) == "cpuset" {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if cur, _ := os.ReadFile(filepath.Join(dir, f)); strings.TrimSpace(string(cur)) != "" {
						continue
					}
					v, err := os.ReadFile(filepath.Join(parent, f))
					if err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
						return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
					}
				}
			}
		}
	}
	return nil
}

// joinCgroup moves process pid into path in every hierarchy.
func joinCgroup(path string, pid int) error {
	var errs []error
	for _, h := range hierarchies() {
		if err := os.WriteFile(filepath.Join(h, path, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killCgroup kills every process under path (in the pids hierarchy, or
// the first there is) until none is left, then removes path's tree from
// every hierarchy.
func killCgroup(path string, timeout time.Duration) error {
	hs := hierarchies()
	if len(hs) == 0 {
		return nil
	}
	probe := hs[0]
	for _, h := range hs {
		if filepath.Base(h) == "pids" {
			probe = h
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		pids := cgroupProcs(filepath.Join(probe, path))
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of cgroup %s survive SIGKILL", pids, path)
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []error
	// The kubelet also makes its cgroups in the unified hierarchy of a
	// hybrid machine.
	for _, h := range append(hs, filepath.Join(cgroupMount, "unified")) {
		if err := removeTree(filepath.Join(h, path), deadline); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cgroupProcs lists the processes in dir and its descendants.
func cgroupProcs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// removeTree removes a cgroup directory and its children, deepest first
// (cgroup directories are removed with rmdir, their files go with them).
// A cgroup whose last process just died can be busy for a moment.
func removeTree(dir string, deadline time.Time) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name()), deadline); err != nil {
				return err
			}
		}
	}
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("rmdir %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
