package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/agate-gateway/agate/"

type pkg struct {
	dir     string
	doc     bool
	imports map[string]bool
}

// packages parses the non-test Go files of the repository.
func packages(t *testing.T) map[string]*pkg {
	t.Helper()
	root := filepath.Join("..", "..")
	out := map[string]*pkg{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		p := out[rel]
		if p == nil {
			p = &pkg{dir: rel, imports: map[string]bool{}}
			out[rel] = p
		}
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") || f.Name.Name == "main" && f.Doc != nil {
			p.doc = true
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, module) {
				p.imports[strings.TrimPrefix(path, module)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for dir, p := range packages(t) {
		if !p.doc {
			t.Errorf("%s: no package doc comment (\"// Package x ...\")", dir)
		}
	}
}

func TestDependenciesPointInwards(t *testing.T) {
	forbidden := []struct{ from, to string }{
		{"internal/policy", "internal/model"},
		{"internal/policy", "internal/action"},
		{"internal/policy", "internal/gateway"},
		{"internal/model", "internal/action"},
		{"internal/model", "internal/gateway"},
		{"internal/action", "internal/model"},
		{"internal/action", "internal/gateway"},
		{"internal/identity", "internal/gateway"},
		{"internal/identity", "internal/model"},
		{"internal/identity", "internal/action"},
		{"internal/store", "internal/gateway"},
		{"internal/audit", "internal/gateway"},
		{"internal/session", "internal/gateway"},
	}
	pkgs := packages(t)
	for dir, p := range pkgs {
		for imp := range p.imports {
			for _, f := range forbidden {
				if (dir == f.from || strings.HasPrefix(dir, f.from+"/")) && (imp == f.to || strings.HasPrefix(imp, f.to+"/")) {
					t.Errorf("%s imports %s: %s must not depend on %s", dir, imp, f.from, f.to)
				}
			}
		}
	}
	for _, name := range []string{"util", "utils", "common", "helpers"} {
		for dir := range pkgs {
			if filepath.Base(dir) == name {
				t.Errorf("%s: no %s packages", dir, name)
			}
		}
	}
}
