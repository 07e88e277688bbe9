package experiment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"sigs.k8s.io/yaml"
)

// templates reads and parses each template file once; scheduler_perf
// reads and parses it for every object.
type templates struct {
	dir string
	mu  sync.Mutex
	m   map[string]*objectTemplate
}

func newTemplates(dir string) *templates {
	return &templates{dir: dir, m: map[string]*objectTemplate{}}
}

// objectTemplate is a parsed template file: text/template with
// scheduler_perf's functions, rendered with .Index, .Count and the op's
// templateParams, then decoded strictly.
type objectTemplate struct {
	path string
	tmpl *template.Template
}

// get parses the template at path, relative to the workload file's
// directory.
func (t *templates) get(path string) (*objectTemplate, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(t.dir, path)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ot, ok := t.m[path]; ok {
		return ot, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New(filepath.Base(path)).Funcs(templateFuncs()).Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ot := &objectTemplate{path: path, tmpl: tmpl}
	t.m[path] = ot
	return ot, nil
}

// render executes the template for object index of count and decodes
// the result strictly into out.
func (ot *objectTemplate) render(params map[string]any, index, count int, out any) (err error) {
	// scheduler_perf's template functions panic on bad arguments.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", ot.path, r)
		}
	}()
	env := make(map[string]any, len(params)+2)
	maps.Copy(env, params)
	env["Index"] = index
	env["Count"] = count
	var buf bytes.Buffer
	if err := ot.tmpl.Execute(&buf, env); err != nil {
		return fmt.Errorf("%s: %w", ot.path, err)
	}
	if err := yaml.UnmarshalStrict(buf.Bytes(), out); err != nil {
		return fmt.Errorf("%s: parsing failed: %w", ot.path, err)
	}
	return nil
}

// static reports whether the template renders the same object whatever
// the index, so that it can be decoded once.
func (ot *objectTemplate) static(params map[string]any, count int) bool {
	var a, b bytes.Buffer
	for i, buf := range []*bytes.Buffer{&a, &b} {
		env := make(map[string]any, len(params)+2)
		maps.Copy(env, params)
		env["Index"], env["Count"] = i, count
		if ot.tmpl.Execute(buf, env) != nil {
			return false
		}
	}
	return bytes.Equal(a.Bytes(), b.Bytes())
}

// templateFuncs are scheduler_perf's template functions (getTemplateFuncs).
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"AddFloat":      addFloat,
		"AddInt":        func(n ...any) int { return int(addFloat(n...)) },
		"DivideFloat":   divideFloat,
		"DivideInt":     func(i, j any) int { return int(divideFloat(i, j)) },
		"Int":           toInt,
		"JSON":          toJSON,
		"Mod":           func(a, b any) int { return int(toFloat64(a)) % int(toFloat64(b)) },
		"MultiplyFloat": multiplyFloat,
		"MultiplyInt":   func(n ...any) int { return int(multiplyFloat(n...)) },
		"SubtractFloat": func(i, j any) float64 { return toFloat64(i) - toFloat64(j) },
		"SubtractInt":   func(i, j any) int { return int(toFloat64(i) - toFloat64(j)) },
	}
}

func toFloat64(v any) float64 {
	switch i := v.(type) {
	case float64:
		return i
	case float32:
		return float64(i)
	case int64:
		return float64(i)
	case int32:
		return float64(i)
	case int:
		return float64(i)
	case uint64:
		return float64(i)
	case uint32:
		return float64(i)
	case uint:
		return float64(i)
	case string:
		if f, err := strconv.ParseFloat(i, 64); err == nil {
			return f
		}
	}
	panic(fmt.Sprintf("cannot cast %v to float64", v))
}

func toInt(v any) int {
	switch i := v.(type) {
	case string:
		if n, err := strconv.Atoi(i); err == nil {
			return n
		}
		panic(fmt.Sprintf("cannot cast %v to int", v))
	default:
		return int(toFloat64(v))
	}
}

func toJSON(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("cannot JSON-encode %v: %v", v, err))
	}
	return strings.TrimSpace(b.String())
}

func addFloat(n ...any) float64 {
	s := 0.0
	for _, x := range n {
		s += toFloat64(x)
	}
	return s
}

func multiplyFloat(n ...any) float64 {
	p := 1.0
	for _, x := range n {
		p *= toFloat64(x)
	}
	return p
}

func divideFloat(i, j any) float64 {
	d := toFloat64(j)
	if d == 0 {
		panic("division by zero")
	}
	return toFloat64(i) / d
}
