package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one server the benchmark started.
type process struct {
	name string
	// base is the URL the server answers on, without a path.
	base string
	log  string
	cmd  *exec.Cmd
	// exited is closed when the process has ended; err says how.
	exited chan struct{}
	err    error
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// binaries are the programs under test, built for this run.
type binaries struct {
	upstream, bareProxy, agate string
	// profiling says agate is bench/cmd/agate-profile, which serves pprof.
	profiling bool
}

// moduleRoot is the directory of the go.mod the harness is run in.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run agate-bench inside the Agate module (go run ./bench/cmd/agate-bench)")
	}
	return filepath.Dir(gomod), nil
}

// build compiles the upstream, the bare proxy and Agate (or its profiling
// copy, or takes a prebuilt Agate) into dir.
func build(root, dir, prebuiltAgate string, profiling bool) (binaries, error) {
	pkgs := []string{"./bench/cmd/bench-upstream", "./bench/cmd/bench-bareproxy"}
	agatePkg, agateName := "./cmd/agate", "agate"
	if profiling {
		agatePkg, agateName = "./bench/cmd/agate-profile", "agate-profile"
	}
	if prebuiltAgate == "" || profiling {
		pkgs = append(pkgs, agatePkg)
	}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	// Built as a release is, static: with cgo a Go binary maps the C
	// library and its loader, which Agate does not need (its SQLite is
	// pure Go): 1.3 MiB of its resident memory, mapped from the start.
	// All three targets are built alike.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return binaries{}, fmt.Errorf("go build %s: %w", strings.Join(pkgs, " "), err)
	}
	b := binaries{
		upstream:  filepath.Join(dir, "bench-upstream"),
		bareProxy: filepath.Join(dir, "bench-bareproxy"),
		agate:     filepath.Join(dir, agateName),
		profiling: profiling,
	}
	if prebuiltAgate != "" && !profiling {
		b.agate = prebuiltAgate
	}
	return b, nil
}

// start runs bin with args, its stderr (and, unless addrLine, its stdout)
// going to logPath. With addrLine it waits for the server's first stdout
// line, "listening http://ADDR", and takes the address from it.
func start(name, bin, logPath string, env []string, addrLine bool, args ...string) (*process, error) {
	// Appending: a restarted process keeps its earlier log.
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// If the harness dies, its servers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = f
	cmd.Stdout = f
	var pr, pw *os.File
	if addrLine {
		if pr, pw, err = os.Pipe(); err != nil {
			f.Close()
			return nil, err
		}
		cmd.Stdout = pw
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if !addrLine {
			f.Close()
		}
		close(p.exited)
	}()
	if !addrLine {
		return p, nil
	}
	pw.Close()
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(pr)
		line, _ := br.ReadString('\n')
		lines <- strings.TrimSpace(line)
		// The rest of stdout goes to the log until the process ends.
		io.Copy(f, br)
		pr.Close()
		f.Close()
	}()
	select {
	case line := <-lines:
		if base, ok := strings.CutPrefix(line, "listening "); ok {
			p.base = base
			return p, nil
		}
		p.stop()
		return nil, fmt.Errorf("%s did not start (first line %q); its log %s ends:\n%s", name, line, logPath, tail(logPath, 20))
	case <-time.After(15 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not start within 15s; see %s", name, logPath)
	}
}

// startAgate runs `agate serve --config cfg --data data` and waits until
// /readyz answers 200.
func startAgate(bin string, profiling bool, env []string, cfgPath, dataDir, logPath, base, pprofAddr string) (*process, error) {
	args := []string{"serve", "--config", cfgPath, "--data", dataDir}
	if profiling {
		args = []string{"-config", cfgPath, "-pprof", pprofAddr}
	}
	p, err := start("agate", bin, logPath, env, false, args...)
	if err != nil {
		return nil, err
	}
	p.base = base
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("agate exited at start (%v); its log %s ends:\n%s", p.err, logPath, tail(logPath, 20))
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("agate not ready within 60s; its log %s ends:\n%s", logPath, tail(logPath, 20))
}

// stop asks the process to end (SIGTERM: Agate drains), then kills it.
func (p *process) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// alive fails when the process has ended.
func (p *process) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); its log %s ends:\n%s", p.name, p.err, p.log, tail(p.log, 20))
	default:
		return nil
	}
}

// freePort finds a loopback TCP port that is free now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// fetch saves the answer of url to path.
func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// raiseFileLimit lifts the soft open-file limit to the hard one, for a
// thousand streams held open at once (children inherit it).
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
