package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// Build stamps, settable at link time:
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.commit=$(git rev-parse HEAD) -X main.modified=false"
//
// Without them the commit and modified state come from the VCS stamp Go
// records in the binary (absent with -buildvcs=false), else "unknown".
var (
	version  = "dev"
	commit   = ""
	modified = ""
)

// buildDescription says which instructgo this binary is.
type buildDescription struct {
	Version      string `json:"version"`
	Commit       string `json:"commit"`
	CommitTime   string `json:"commit_time,omitempty"`
	Modified     string `json:"modified"` // "true", "false" or "unknown"
	GoVersion    string `json:"go_version"`
	Platform     string `json:"platform"` // GOOS/GOARCH
	CUDACompiled bool   `json:"cuda_compiled"`
}

// describeBuild reads the link-time stamps and the binary's build info.
func describeBuild() buildDescription {
	d := buildDescription{
		Version:      version,
		Commit:       commit,
		Modified:     modified,
		GoVersion:    runtime.Version(),
		Platform:     runtime.GOOS + "/" + runtime.GOARCH,
		CUDACompiled: cudaCompiled(),
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if d.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			d.Version = bi.Main.Version // installed with go install module@version
		}
		vcs := map[string]string{}
		for _, s := range bi.Settings {
			vcs[s.Key] = s.Value
		}
		if d.Commit == "" {
			d.Commit = vcs["vcs.revision"]
			d.CommitTime = vcs["vcs.time"]
			if d.Modified == "" {
				d.Modified = vcs["vcs.modified"]
			}
		}
	}
	if d.Commit == "" {
		d.Commit = "unknown"
	}
	if d.Modified == "" {
		d.Modified = "unknown"
	}
	return d
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit, Go version, platform and whether the cuda backend is compiled in",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of text"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			d := describeBuild()
			if c.Bool("json") {
				return writeJSON(c, d)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "instructgo\t%s\n", d.Version)
			commit := d.Commit
			if d.CommitTime != "" {
				commit += " (" + d.CommitTime + ")"
			}
			fmt.Fprintf(tw, "commit\t%s\n", commit)
			fmt.Fprintf(tw, "modified\t%s\n", d.Modified)
			fmt.Fprintf(tw, "go\t%s\n", d.GoVersion)
			fmt.Fprintf(tw, "platform\t%s\n", d.Platform)
			fmt.Fprintf(tw, "cuda backend\t%s\n", cudaStatus(d.CUDACompiled))
			if err := tw.Flush(); err != nil {
				return fmt.Errorf("write version: %w", err)
			}
			return nil
		},
	}
}

// cudaStatus says in words whether the cuda backend is compiled in.
func cudaStatus(compiled bool) string {
	if compiled {
		return "compiled in"
	}
	return "not compiled in (build with -tags cuda)"
}
