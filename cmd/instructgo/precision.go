package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/safetensors"
)

const (
	flagPrecision = "precision"
	flagSaveDType = "save-dtype"
)

// precisionFlag is the global --precision.
func precisionFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  flagPrecision,
		Value: "auto",
		Usage: "precision of the models' weights and activations: auto (bf16 on cuda, fp32 on the cpu), fp32, tf32 (fp32, with products on TF32 tensor cores on cuda) or bf16 (bf16 weights and activations, fp32 master weights, gradients and optimizer state)",
	}
}

// saveDTypeFlag is the global --save-dtype.
func saveDTypeFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  flagSaveDType,
		Value: "fp32",
		Usage: "how a training run stores the model it ends with: fp32, or bf16 (half the size; transformers loads it as torch.bfloat16); the resume state is always fp32",
	}
}

// saveDType is the safetensors dtype --save-dtype names.
func saveDType(c *cli.Context) (string, error) {
	switch s := c.String(flagSaveDType); s {
	case "fp32":
		return safetensors.F32, nil
	case "bf16":
		return safetensors.BF16, nil
	default:
		return "", usageErrorf("invalid --%s %q: want fp32 or bf16", flagSaveDType, s)
	}
}

// checkPrecisionFlag validates --precision and --save-dtype before any
// command runs.
func checkPrecisionFlag(c *cli.Context) error {
	if s := c.String(flagPrecision); s != "auto" {
		if _, err := model.ParsePrecision(s); err != nil {
			return usageErrorf("invalid --%s: %v", flagPrecision, err)
		}
	}
	_, err := saveDType(c)
	return err
}

// tf32Switch is a backend whose float32 products can run on TF32 tensor
// cores (cuda).
type tf32Switch interface {
	SetTF32(on bool) error
}

// openBackendPrecision opens the backend (openBackend) and resolves
// --precision for it: auto is bf16 on cuda, fp32 elsewhere; tf32 turns the
// backend's TF32 products on where it has them and is fp32 where it does
// not.
func openBackendPrecision(c *cli.Context) (gpu.Backend, model.Precision, error) {
	b, err := openBackend(c)
	if err != nil {
		return nil, 0, err
	}
	s := c.String(flagPrecision)
	if s == "auto" {
		s = "fp32"
		if strings.HasPrefix(b.Name(), "cuda") {
			s = "bf16"
		}
	}
	p, err := model.ParsePrecision(s)
	if err != nil {
		b.Close()
		return nil, 0, usageErrorf("invalid --%s: %v", flagPrecision, err)
	}
	if p == model.TF32 {
		if sw, ok := b.(tf32Switch); !ok {
			logger(c).Info().Msg("precision tf32: this backend multiplies in fp32 (TF32 is a GPU tensor-core mode)")
		} else if err := sw.SetTF32(true); err != nil {
			logger(c).Warn().Err(err).Msg("precision tf32: TF32 products unavailable, multiplying in fp32")
		}
	}
	logger(c).Info().Str("precision", p.String()).Msg("precision")
	return b, p, nil
}
