package main

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/model"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "list a checkpoint's tensors with dtype, shape, norm, mean, std, min/max and NaN/Inf/zero counts",
		UsageText: "instructgo [global options] inspect [--json] [--match REGEXP] [--fail-nonfinite] DIR|FILE.safetensors",
		Description: "Reads a checkpoint directory (its model.safetensors, or the shards its\n" +
			"model.safetensors.index.json lists), a shard index, or any safetensors file (a run's\n" +
			"resume/optimizer.safetensors, say), one tensor at a time, and prints for each its dtype,\n" +
			"shape, element count, L2 norm, mean, standard deviation, min and max, and its counts of NaN,\n" +
			"+Inf, -Inf and zeros, then a total. Norm, mean, std, min and max are over the finite values\n" +
			"(\"-\" when there are none); tensors of integer or 8-bit float dtypes are listed without\n" +
			"statistics. --json prints one object per tensor and line: {\"file\", \"name\", \"dtype\", \"shape\",\n" +
			"\"elements\", \"bytes\", \"measured\", \"norm\", \"mean\", \"std\", \"min\", \"max\", \"nan\", \"pos_inf\",\n" +
			"\"neg_inf\", \"zeros\"}, null where the table shows \"-\". Any NaN or Inf is a warning on stderr;\n" +
			"with --fail-nonfinite it also makes the exit status 1.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per tensor and line instead of the table"},
			&cli.StringFlag{Name: "match", Usage: "inspect only the tensors whose name matches this regular expression"},
			&cli.BoolFlag{Name: "fail-nonfinite", Usage: "exit with status 1 when any tensor has a NaN or Inf value"},
		},
		Action: runInspect,
	}
}

func runInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		hint := ""
		for _, a := range c.Args().Tail() {
			if strings.HasPrefix(a, "-") {
				hint = "; options go before the path"
			}
		}
		return usageErrorf("inspect takes one checkpoint directory or safetensors file, got %d arguments%s (see '%s inspect --help')",
			c.NArg(), hint, c.App.Name)
	}
	path := c.Args().First()
	var keep func(string) bool
	if m := c.String("match"); m != "" {
		re, err := regexp.Compile(m)
		if err != nil {
			return usageErrorf("invalid --match %q: %v", m, err)
		}
		keep = re.MatchString
	}
	in, err := model.InspectCheckpoint(path, keep)
	if err != nil {
		return err
	}
	if keep != nil && len(in.Tensors) == 0 {
		return fmt.Errorf("inspect: no tensor of %s matches --match %q", path, c.String("match"))
	}
	if c.Bool("json") {
		err = writeInspectJSON(c, in)
	} else {
		err = writeInspectText(c, in)
	}
	if err != nil {
		return err
	}

	var bad []string
	for _, ts := range in.Tensors {
		if ts.NonFinite() > 0 {
			bad = append(bad, ts.Name)
		}
	}
	if len(bad) > 0 {
		logger(c).Warn().Int("nonfinite_tensors", len(bad)).
			Msgf("inspect: %d of %d tensors have NaN or Inf values (first: %s)", len(bad), len(in.Tensors), bad[0])
		if c.Bool("fail-nonfinite") {
			return cli.Exit("", exitFailure) // the warning is the message
		}
	}
	return nil
}

// inspectRecord is one line of inspect --json. Statistics that are NaN or
// infinite, and all of them for an unmeasured tensor, are null.
type inspectRecord struct {
	File     string      `json:"file"`
	Name     string      `json:"name"`
	DType    string      `json:"dtype"`
	Shape    []int       `json:"shape"`
	Elements int64       `json:"elements"`
	Bytes    int64       `json:"bytes"`
	Measured bool        `json:"measured"`
	Norm     finiteFloat `json:"norm"`
	Mean     finiteFloat `json:"mean"`
	Std      finiteFloat `json:"std"`
	Min      finiteFloat `json:"min"`
	Max      finiteFloat `json:"max"`
	NaN      *int64      `json:"nan"`
	PosInf   *int64      `json:"pos_inf"`
	NegInf   *int64      `json:"neg_inf"`
	Zeros    *int64      `json:"zeros"`
}

// finiteFloat is a float64 that encodes as null when it is NaN or
// infinite, which JSON numbers cannot express.
type finiteFloat float64

func (f finiteFloat) MarshalJSON() ([]byte, error) {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, x, 'g', -1, 64), nil
}

func writeInspectJSON(c *cli.Context, in model.Inspection) error {
	enc := json.NewEncoder(c.App.Writer)
	for _, ts := range in.Tensors {
		r := inspectRecord{File: ts.File, Name: ts.Name, DType: ts.DType, Shape: ts.Shape,
			Elements: ts.Elements, Bytes: ts.Bytes, Measured: ts.Measured}
		nan := finiteFloat(math.NaN())
		r.Norm, r.Mean, r.Std, r.Min, r.Max = nan, nan, nan, nan, nan
		if ts.Measured {
			r.Norm, r.Mean, r.Std, r.Min, r.Max = finiteFloat(ts.Norm), finiteFloat(ts.Mean),
				finiteFloat(ts.Std), finiteFloat(ts.Min), finiteFloat(ts.Max)
			r.NaN, r.PosInf, r.NegInf, r.Zeros = &ts.NaN, &ts.PosInf, &ts.NegInf, &ts.Zeros
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
	}
	return nil
}

func writeInspectText(c *cli.Context, in model.Inspection) error {
	w := c.App.Writer
	head := strings.Join(in.Files, ", ")
	if in.ModelType != "" || len(in.Architectures) > 0 {
		head += fmt.Sprintf(" (%s)", strings.Join(append([]string{in.ModelType}, in.Architectures...), ", "))
	}
	fmt.Fprintln(w, head)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDTYPE\tSHAPE\tELEMENTS\tNORM\tMEAN\tSTD\tMIN\tMAX\tNAN\t+INF\t-INF\tZEROS")
	var params, bytes int64
	bad := 0
	for _, ts := range in.Tensors {
		params += ts.Elements
		bytes += ts.Bytes
		if ts.NonFinite() > 0 {
			bad++
		}
		dims := make([]string, len(ts.Shape))
		for i, d := range ts.Shape {
			dims[i] = strconv.Itoa(d)
		}
		fmt.Fprintf(tw, "%s\t%s\t[%s]\t%d", ts.Name, ts.DType, strings.Join(dims, ","), ts.Elements)
		if !ts.Measured {
			fmt.Fprintln(tw, strings.Repeat("\t-", 9))
			continue
		}
		for _, x := range []float64{ts.Norm, ts.Mean, ts.Std, ts.Min, ts.Max} {
			fmt.Fprintf(tw, "\t%s", statText(x))
		}
		fmt.Fprintf(tw, "\t%d\t%d\t%d\t%d\n", ts.NaN, ts.PosInf, ts.NegInf, ts.Zeros)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write inspect table: %w", err)
	}
	_, err := fmt.Fprintf(w, "total: %d tensors, %d elements, %s, %d with NaN or Inf values\n",
		len(in.Tensors), params, formatBytes(uint64(bytes)), bad)
	if err != nil {
		return fmt.Errorf("write inspect table: %w", err)
	}
	return nil
}

// statText formats one statistic for the table: four significant digits,
// "-" when it is not a finite number.
func statText(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	return strconv.FormatFloat(x, 'g', 4, 64)
}
