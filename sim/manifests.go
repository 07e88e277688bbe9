package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
)

// manifestExtensions are the files a manifest directory is read from, as
// envtest reads them.
var manifestExtensions = []string{".json", ".yaml", ".yml"}

// readManifests decodes every object of the files at paths (files, or
// directories whose manifest files are read, not recursively).
func readManifests(paths []string, errorIfMissing bool) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, p := range paths {
		info, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) && !errorIfMissing {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("unable to read manifests: %w", err)
		}
		files := []string{p}
		if info.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("unable to read manifests: %w", err)
			}
			files = files[:0]
			for _, e := range entries {
				if !e.IsDir() && slices.Contains(manifestExtensions, filepath.Ext(e.Name())) {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
		}
		for _, f := range files {
			objs, err := decodeManifest(f)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func decodeManifest(path string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("unable to read manifests: %w", err)
	}
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var obj map[string]any
		if err := d.Decode(&obj); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("unable to decode %s: %w", path, err)
		}
		if len(obj) == 0 {
			continue // an empty document
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// typedManifests converts the objects of one kind to their type and
// refuses any other kind.
func typedManifests[T any](objs []*unstructured.Unstructured, kinds map[schema.GroupVersionKind]func(*unstructured.Unstructured) (T, error)) ([]T, error) {
	var out []T
	for _, u := range objs {
		conv, ok := kinds[u.GroupVersionKind()]
		if !ok {
			return nil, fmt.Errorf("unable to install %s %q: not a kind this option takes", u.GroupVersionKind(), u.GetName())
		}
		t, err := conv(u)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func fromUnstructured[T any](u *unstructured.Unstructured) (*T, error) {
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		return nil, fmt.Errorf("unable to read %s %q: %w", u.GetKind(), u.GetName(), err)
	}
	return out, nil
}

// loadCRDs returns cfg's CRDs and those of its CRD paths.
func loadCRDs(cfg Config) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	objs, err := readManifests(cfg.CRDDirectoryPaths, cfg.ErrorIfCRDPathMissing)
	if err != nil {
		return nil, err
	}
	fromFiles, err := typedManifests(objs, map[schema.GroupVersionKind]func(*unstructured.Unstructured) (*apiextensionsv1.CustomResourceDefinition, error){
		apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"): fromUnstructured[apiextensionsv1.CustomResourceDefinition],
	})
	if err != nil {
		return nil, err
	}
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(cfg.CRDs)+len(fromFiles))
	for _, crd := range cfg.CRDs {
		out = append(out, crd.DeepCopy())
	}
	return append(out, fromFiles...), nil
}

// loadWebhookConfigurations returns the webhook configurations of w and of
// its paths.
func loadWebhookConfigurations(w Webhooks) ([]*admissionregistrationv1.MutatingWebhookConfiguration, []*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	objs, err := readManifests(w.Paths, true)
	if err != nil {
		return nil, nil, err
	}
	var mutating []*admissionregistrationv1.MutatingWebhookConfiguration
	var validating []*admissionregistrationv1.ValidatingWebhookConfiguration
	for _, m := range w.Mutating {
		mutating = append(mutating, m.DeepCopy())
	}
	for _, v := range w.Validating {
		validating = append(validating, v.DeepCopy())
	}
	for _, u := range objs {
		switch u.GroupVersionKind() {
		case admissionregistrationv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration"):
			m, err := fromUnstructured[admissionregistrationv1.MutatingWebhookConfiguration](u)
			if err != nil {
				return nil, nil, err
			}
			mutating = append(mutating, m)
		case admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingWebhookConfiguration"):
			v, err := fromUnstructured[admissionregistrationv1.ValidatingWebhookConfiguration](u)
			if err != nil {
				return nil, nil, err
			}
			validating = append(validating, v)
		default:
			return nil, nil, fmt.Errorf("unable to install %s %q: Webhooks.Paths take webhook configurations", u.GroupVersionKind(), u.GetName())
		}
	}
	return mutating, validating, nil
}

// installCRDs creates (or updates) the CRDs and waits until each is
// established and every served version is in discovery, so that a client
// started after Start finds them.
func installCRDs(ctx context.Context, client apiextensionsclient.Interface, crds []*apiextensionsv1.CustomResourceDefinition) error {
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	for _, crd := range crds {
		if err := createOrReplace(ctx, crd.DeepCopy(), api.Create, api.Get, api.Update); err != nil {
			return fmt.Errorf("unable to install CRD %s: %w", crd.Name, err)
		}
	}
	disco := client.Discovery()
	for _, crd := range crds {
		if err := waitForCRD(ctx, client, disco, crd); err != nil {
			return err
		}
	}
	return nil
}

// crdWait bounds how long a CRD may take to be served.
const crdWait = 30 * time.Second

func waitForCRD(ctx context.Context, client apiextensionsclient.Interface, disco discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, crdWait, true, func(ctx context.Context) (bool, error) {
		got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.NamesAccepted && c.Status == apiextensionsv1.ConditionFalse {
				// Refused names do not heal by waiting.
				return false, fmt.Errorf("its names are not accepted: %s: %s", c.Reason, c.Message)
			}
			if c.Type == apiextensionsv1.Established && c.Status != apiextensionsv1.ConditionTrue {
				last = c.Message
			}
		}
		established := false
		for _, c := range got.Status.Conditions {
			established = established || (c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue)
		}
		if !established {
			return false, nil
		}
		for _, v := range got.Spec.Versions {
			if !v.Served {
				continue
			}
			list, err := disco.ServerResourcesForGroupVersion(got.Spec.Group + "/" + v.Name)
			if err != nil {
				last = err.Error()
				return false, nil
			}
			if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == got.Spec.Names.Plural }) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		msg := strings.TrimSpace(last)
		if msg != "" {
			msg = " (" + msg + ")"
		}
		return fmt.Errorf("CRD %s is not served: %w%s", crd.Name, err, msg)
	}
	return nil
}
