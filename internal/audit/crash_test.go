package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash helper is this test binary run again with these variables set:
// it logs under load from several goroutines and prints "ack SEQ" for every
// record Log acknowledged, until it is killed.
const (
	crashDirEnv  = "AGATE_AUDIT_CRASH_DIR"
	crashModeEnv = "AGATE_AUDIT_CRASH_MODE"
)

func crashConfig(t testing.TB, mode string) string {
	return fmt.Sprintf("  durability: %s\n  checkpoint_every: 500\n  writers:\n    - type: sqlite\n    - type: jsonl\n      path: audit.jsonl\n", mode)
}

func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only runs as the crash test's child process")
	}
	mode := os.Getenv(crashModeEnv)
	l, err := Open(context.Background(), testAuditConfig(t, crashConfig(t, mode)), dir, quiet())
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				rec := Record{Kind: KindToolInvocation, Subject: fmt.Sprint("user-", g), Decision: DecisionAllow, Reason: fmt.Sprint(i)}
				rc, err := l.append(context.Background(), rec, mode == "strict")
				if err != nil {
					fmt.Println("log:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d\n", rc.Seq) // unbuffered: printed means acknowledged
				mu.Unlock()
			}
		}()
	}
	select {} // until killed
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	for _, mode := range []string{"strict", "batched"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testAuditConfig(t, crashConfig(t, mode))
			// Two crashes in a row: the second run resumes the chain
			// the first one left.
			for round := range 2 {
				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
				cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+mode)
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				acked := map[uint64]bool{}
				sc := bufio.NewScanner(stdout)
				n := 0
				killed := false
				start := time.Now()
				for sc.Scan() {
					line := sc.Text()
					s, ok := strings.CutPrefix(line, "ack ")
					if !ok {
						t.Fatalf("child: %s", line)
					}
					seq, err := strconv.ParseUint(s, 10, 64)
					if err != nil {
						t.Fatalf("child: %s", line)
					}
					acked[seq] = true
					n++
					// Past a second and 1500 records several batches
					// are committed (a full max_batch ends the
					// linger), so the kill lands mid-stream.
					if !killed && (n >= 1500 && time.Since(start) > time.Second || time.Since(start) > 6*time.Second) {
						// Everything already printed is acknowledged;
						// the pipe's remainder is read after the kill.
						cmd.Process.Signal(syscall.SIGKILL)
						killed = true
					}
				}
				err = cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("round %d: child ended with %v, not SIGKILL", round, err)
				}
				// Before anything reopens the store: which acknowledged
				// records made it, in each writer.
				a, err := OpenArchive(context.Background(), cfg, dir)
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range a.readers {
					chains, err := r.Chains(context.Background())
					if err != nil || len(chains) != 1 {
						t.Fatalf("%s: chains %v, %v", a.names[i], chains, err)
					}
					stored := map[uint64]bool{}
					if err := r.Scan(context.Background(), chains[0], func(row Row) error {
						rec, err := decodeRecord(row.Body)
						stored[rec.Seq] = err == nil
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					missing := 0
					for seq := range acked {
						if !stored[seq] {
							missing++
						}
					}
					switch {
					case mode == "strict" && missing > 0:
						t.Errorf("round %d, %s: %d of %d acknowledged records are missing after kill -9", round, a.names[i], missing, len(acked))
					case mode == "batched":
						// Acknowledged means queued: the loss window is
						// the queue and the batch in flight at the kill.
						t.Logf("round %d, %s: batched mode lost %d of %d acknowledged records", round, a.names[i], missing, len(acked))
					}
				}
				a.Close()
				t.Logf("%s round %d: %d acknowledged records before kill -9", mode, round, n)
			}

			// Restart: the chain resumes after the last stored record.
			l, err := Open(context.Background(), cfg, dir, quiet())
			if err != nil {
				t.Fatal(err)
			}
			rc, err := l.Commit(context.Background(), Record{Kind: KindAdmin, Reason: "after the crash"})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			a, err := OpenArchive(context.Background(), cfg, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			reps, err := a.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != 2 {
				t.Fatalf("got %d reports; want one per writer", len(reps))
			}
			for _, rep := range reps {
				if !rep.OK() {
					t.Errorf("%s: chain does not verify after kill -9: %v", rep.Writer, rep.Problems)
				}
				if rep.Last != rc.Seq || rep.SignedThrough != rc.Seq {
					t.Errorf("%s: last %d, signed through %d; want %d", rep.Writer, rep.Last, rep.SignedThrough, rc.Seq)
				}
			}
		})
	}
}
