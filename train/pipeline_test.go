package train

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStageState(t *testing.T) {
	write := func(path, text string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	check := func(what string, wantDone, wantResume bool) {
		t.Helper()
		done, resume := stageState(dir)
		if done != wantDone || resume != wantResume {
			t.Errorf("%s: finished %v resumable %v, want %v %v", what, done, resume, wantDone, wantResume)
		}
	}
	check("empty directory", false, false)
	write(filepath.Join(dir, ResumeDir, TrainerStateFile), `{"step": 3}`)
	check("killed after a save", false, true)
	write(filepath.Join(dir, SummaryFile), `{"steps": 3, "interrupted": true}`)
	check("interrupted", false, true)
	write(filepath.Join(dir, SummaryFile), `{"steps": 9, "interrupted": false}`)
	check("finished", true, false)
	write(filepath.Join(dir, SummaryFile), `{"steps": 9`)
	check("torn summary", false, true)
}
