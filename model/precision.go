package model

import (
	"fmt"
	"strings"

	"github.com/instructgo/instructgo/gpu"
)

// Precision is a model's precision policy (docs/PRECISION.md), the one
// place that decides the dtypes of its tensors: master weights, their
// gradients and the optimizer state are always float32; the weights the
// ops read and the activations follow the policy.
type Precision uint8

const (
	// FP32 reads the float32 master weights and keeps float32 activations.
	FP32 Precision = iota
	// TF32 is FP32 for the model; the backend multiplies on TF32 tensor
	// cores where it has them (cuda), and exactly like FP32 elsewhere.
	TF32
	// BF16 reads a bf16 copy of the master weights, refreshed by every
	// optimizer update, and keeps bf16 activations and activation
	// gradients; statistics, losses and parameter gradients stay float32.
	BF16
)

var precisionNames = [...]string{FP32: "fp32", TF32: "tf32", BF16: "bf16"}

func (p Precision) String() string {
	if int(p) < len(precisionNames) {
		return precisionNames[p]
	}
	return fmt.Sprintf("precision(%d)", uint8(p))
}

// ParsePrecision reads "fp32", "tf32" or "bf16".
func ParsePrecision(s string) (Precision, error) {
	for p, name := range precisionNames {
		if s == name {
			return Precision(p), nil
		}
	}
	return 0, fmt.Errorf("unknown precision %q (known: %s)", s, strings.Join(precisionNames[:], ", "))
}

// ActDType is the dtype of the activations, their gradients and the
// weights the ops read.
func (p Precision) ActDType() gpu.DType {
	if p == BF16 {
		return gpu.BF16
	}
	return gpu.Float32
}

// MarshalText and UnmarshalText let a precision be a JSON string.
func (p Precision) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

func (p *Precision) UnmarshalText(b []byte) error {
	q, err := ParsePrecision(string(b))
	if err == nil {
		*p = q
	}
	return err
}
