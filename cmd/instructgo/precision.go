package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
)

const flagPrecision = "precision"

// precisionFlag is the global --precision.
func precisionFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  flagPrecision,
		Value: "auto",
		Usage: "precision of the models' weights and activations: auto (bf16 on cuda, fp32 on the cpu), fp32, tf32 (fp32, with products on TF32 tensor cores on cuda) or bf16 (bf16 weights and activations, fp32 master weights, gradients and optimizer state)",
	}
}

// checkPrecisionFlag validates --precision before any command runs.
func checkPrecisionFlag(c *cli.Context) error {
	if s := c.String(flagPrecision); s != "auto" {
		if _, err := model.ParsePrecision(s); err != nil {
			return usageErrorf("invalid --%s: %v", flagPrecision, err)
		}
	}
	return nil
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
