# instructgo: build, test, benchmark, lint.
# The default build is pure Go (cpu backend); nothing here needs a GPU.

GO      ?= go
BIN     := bin/instructgo
PKGS    := ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build pipeline test bench lint fmt clean hf-check hf-check-llama tokenizer-check \
	cuda-tools cuda-tools12 cuda-tools13 kernels cuda-check cuda-emu-test build-cuda gpu-bundle \
	mpi-tools mpi-test build-mpi

all: lint build test

## build: the instructgo binary in bin/
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/instructgo

## pipeline: build, then run the whole recipe on the built-in default into
## runs/pipeline (about 8 minutes on two cores; ARGS="--seed 2" passes flags)
pipeline: build
	./$(BIN) pipeline $(ARGS)

## test: every package's tests (float64 references, gradient checks, CLI)
test:
	$(GO) test -count=1 $(PKGS)

## bench: op and training-step benchmarks on this machine (see bench/RESULTS.md)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./gpu/cpu/ ./model/

## tokenizer-check: Python's Hugging Face tokenizers (and jinja2, for the chat
## templates) still give the ids, splits and renderings the tokenizer tests use
## (model/tokenizer/testdata/hf/expected.json); PYTHON with `pip install
## tokenizers jinja2`
tokenizer-check:
	$(PYTHON) model/tokenizer/testdata/hf/make_hf.py --check
	$(GO) test -count=1 -run 'HF|Pattern|BPE|Chat' ./model/tokenizer/

## hf-check: Hugging Face transformers loads a pipeline run's PPO policy and
## reward model with instructgo's greedy tokens and rewards, and instructgo loads
## a GPT-2 that transformers saved, with its greedy tokens
## (RUN=runs/pipeline; PYTHON with torch and transformers, e.g. a venv)
RUN    ?= runs/pipeline
PYTHON ?= python3
HFC    := build/hf-check
hf-check: build tokenizer-check hf-check-llama
	@mkdir -p $(HFC)
	head -n 40 $(RUN)/data/eval.jsonl > $(HFC)/prompts.jsonl
	head -n 20 $(RUN)/data/rm.jsonl > $(HFC)/comparisons.jsonl
	$(BIN) generate --model $(RUN)/ppo --prompts $(HFC)/prompts.jsonl --max-new 32 --json > $(HFC)/generate.jsonl
	$(BIN) rm score --model $(RUN)/rm --data $(HFC)/comparisons.jsonl --json > $(HFC)/scores.jsonl
	$(PYTHON) model/hfcheck/check_hf.py lm $(RUN)/ppo $(HFC)/generate.jsonl
	$(PYTHON) model/hfcheck/check_hf.py rm $(RUN)/rm $(HFC)/scores.jsonl
	$(PYTHON) model/hfcheck/check_hf.py save-random $(HFC)/hf-gpt2
	$(BIN) generate --model $(HFC)/hf-gpt2 --prompt "The quick brown fox" --prompt "Hello, world" \
		--prompt "instructgo trains language models" --max-new 12 --json > $(HFC)/generate-hf.jsonl
	$(PYTHON) model/hfcheck/check_hf.py lm $(HFC)/hf-gpt2 $(HFC)/generate-hf.jsonl

## hf-check-llama: the Llama family both ways, on random models (no run needed):
## a LlamaForCausalLM (sharded, llama3 rope scaling) and a Qwen2ForCausalLM (bf16)
## that transformers saved load in instructgo with the same logits (to 1e-4) and
## greedy tokens; a Llama (sharded) and a Qwen2 reward model (bf16) that instructgo
## saved load in transformers with the same logits, greedy tokens and rewards
hf-check-llama:
	@rm -rf $(HFC)/hf-llama $(HFC)/hf-qwen2 $(HFC)/ig-llama $(HFC)/ig-qwen2-rm; mkdir -p $(HFC)
	$(PYTHON) model/hfcheck/check_hf.py save-random-llama $(HFC)/hf-llama llama
	$(PYTHON) model/hfcheck/check_hf.py save-random-llama $(HFC)/hf-qwen2 qwen2
	INSTRUCTGO_HF_CHECK=$(CURDIR)/$(HFC) $(GO) test ./model -run '^TestHFCheckLlama$$' -count=1 -v
	$(PYTHON) model/hfcheck/check_hf.py check-llama $(HFC)/ig-llama
	$(PYTHON) model/hfcheck/check_hf.py check-llama $(HFC)/ig-qwen2-rm

## lint: gofmt check and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin build $(FATBIN)

# ---------------------------------------------------------------------------
# MPI (build tag mpi): data-parallel runs of the cpu backend across processes
# through Open MPI, from the distribution's packages. See README "More than
# one process".

BIN_MPI       := bin/instructgo-mpi
# Packages with mpi-tagged tests, and the tests' names (the rest of those
# packages runs in make test).
MPI_TEST_RUN  := ^Test(MPI|DataParallel)
MPI_TEST_PKGS = $(sort $(patsubst %/,./%,$(dir $(shell find . \( -path ./third_party -o -path ./build -o -path ./.git -o -path ./.venv \) -prune -o -name '*_test.go' -print | xargs grep -lE '^//go:build.*\bmpi\b' 2>/dev/null | sed 's|^\./||'))))
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## mpi-tools: install Open MPI (libopenmpi-dev, openmpi-bin) with apt-get unless mpirun and its pkg-config file are there
mpi-tools:
	@if command -v mpirun >/dev/null && pkg-config --exists ompi-c; then echo "mpi-tools: $$(mpirun --version | head -n1)"; \
	else $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin pkg-config; fi

## mpi-test: vet the mpi-tagged code, then its tests, which run themselves as ranks under mpirun
mpi-test: mpi-tools
	$(GO) vet -tags mpi $(PKGS)
	$(GO) test -count=1 -tags mpi -run '$(MPI_TEST_RUN)' -v $(MPI_TEST_PKGS)

## build-mpi: the instructgo binary with Open MPI in bin/instructgo-mpi (run it under mpirun)
build-mpi: mpi-tools
	$(GO) build -tags mpi -ldflags '$(LDFLAGS)' -o $(BIN_MPI) ./cmd/instructgo

# ---------------------------------------------------------------------------
# CUDA (build tag cuda). Nothing below needs a GPU; see README "Running on a
# GPU" and third_party/cuda/README.md.
#
# The compiler and headers: CUDA_HOME when set (a real CUDA 12 toolkit, e.g.
# /usr/local/cuda), else the pinned CUDA 12.4 tree third_party/cuda/install.sh
# lays out in third_party/cuda/.install/cuda12. The CUDA 13 headers of the
# compat check always come from the install script.

CUDA_INSTALL  := third_party/cuda/.install
CUDA12_HOME   := $(if $(strip $(CUDA_HOME)),$(CUDA_HOME),$(CUDA_INSTALL)/cuda12)
CUDA13_INC    := $(CUDA_INSTALL)/cuda13/include
NVCC          := $(CUDA12_HOME)/bin/nvcc
CUDA_HOSTCXX  ?= g++
CUDA_BUILD    := build/cuda
FATBIN        := gpu/cuda/kernels.fatbin
KERNEL_SRCS   := $(sort $(wildcard kernels/*.cu))
KERNEL_HDRS   := $(wildcard kernels/*.cuh kernels/*.h)
# SASS for Ampere (A100: sm_80; A10/RTX 30: sm_86), Ada (L4/RTX 40: sm_89)
# and Hopper (H100/H200: sm_90), plus compute_80 PTX that newer GPUs JIT.
NVCC_GENCODE  := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
                 -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
                 -gencode arch=compute_80,code=compute_80
NVCCFLAGS     ?= -O3 -std=c++17 -lineinfo --threads 2
# Kernels that must not spill registers (an ERE, case-insensitive).
SPILL_CHECK_PATTERN ?= attention|attn|flash|log_?softmax|cross_?entropy|gemm
WITH_CUDA12   := bash gpu/cuda/scripts/with-cuda.sh $(CUDA12_HOME)/include $(CUDA_BUILD)/stub12
WITH_CUDA13   := bash gpu/cuda/scripts/with-cuda.sh $(CUDA13_INC) $(CUDA_BUILD)/stub13
# Packages with cuda-tagged tests (their test binaries go into the checks
# and the bundle); gpu/cuda always.
CUDA_TEST_PKGS = $(sort ./gpu/cuda $(patsubst %/,./%,$(dir $(shell find . \( -path ./third_party -o -path ./build -o -path ./.git -o -path ./.venv \) -prune -o -name '*_test.go' -print | xargs grep -lE '^//go:build.*\bcuda\b' 2>/dev/null | sed 's|^\./||'))))
BIN_CUDA      := bin/instructgo-cuda
BUNDLE        := build/gpu-bundle

## cuda-tools: install the pinned CUDA build tools (nothing when up to date; with CUDA_HOME only the CUDA 13 headers)
cuda-tools: cuda-tools12 cuda-tools13

cuda-tools12:
	@$(if $(strip $(CUDA_HOME)),echo "CUDA_HOME=$(CUDA_HOME): using its nvcc and headers",bash third_party/cuda/install.sh cuda12)

cuda-tools13:
	@bash third_party/cuda/install.sh cuda13

## kernels: compile kernels/*.cu into one fatbin (embedded by gpu/cuda), keep the ptxas report, fail on spills in attention/log-softmax/cross-entropy/GEMM
kernels: $(FATBIN)

$(FATBIN): $(KERNEL_SRCS) $(KERNEL_HDRS) gpu/cuda/scripts/check-spills.sh | cuda-tools12
	@mkdir -p $(CUDA_BUILD)
	@printf '// Generated by make kernels: every kernels/*.cu, one translation unit.\n' > $(CUDA_BUILD)/kernels_all.cu
	@printf '#include "%s"\n' $(KERNEL_SRCS) >> $(CUDA_BUILD)/kernels_all.cu
	@echo "nvcc: $(words $(KERNEL_SRCS)) kernel files -> $@ (report: $(CUDA_BUILD)/ptxas.txt)"
	@$(NVCC) -ccbin $(CUDA_HOSTCXX) $(NVCCFLAGS) -I. $(NVCC_GENCODE) -Xptxas -v \
		-fatbin -o $@.tmp $(CUDA_BUILD)/kernels_all.cu 2> $(CUDA_BUILD)/ptxas.txt \
		|| { cat $(CUDA_BUILD)/ptxas.txt; rm -f $@.tmp; exit 1; }
	@bash gpu/cuda/scripts/check-spills.sh $(CUDA_BUILD)/ptxas.txt '$(SPILL_CHECK_PATTERN)' || { rm -f $@.tmp; exit 1; }
	@mv $@.tmp $@
	@ls -l $@ | awk '{print "fatbin: " $$5 " bytes"}'

## cuda-check: kernels, then go vet, go build and go test -c with -tags cuda against the CUDA 12 headers and again against CUDA 13's (with the compat header), linking a stub libcuda
cuda-check: kernels cuda-tools13
	@echo "== cuda-check: CUDA 12 headers ($(CUDA12_HOME)/include)"
	$(WITH_CUDA12) sh -c '$(GO) vet -tags cuda $(PKGS) && \
		$(GO) build -tags cuda -o $(CUDA_BUILD)/check12/instructgo ./cmd/instructgo && \
		$(GO) test -c -tags cuda -o $(CUDA_BUILD)/check12/ $(CUDA_TEST_PKGS)'
	@echo "== cuda-check: CUDA 13 headers ($(CUDA13_INC)) with gpu/cuda/compat/cuda13"
	$(WITH_CUDA13) sh -c '$(GO) vet -tags cuda $(PKGS) && \
		$(GO) build -tags cuda -o $(CUDA_BUILD)/check13/instructgo ./cmd/instructgo && \
		$(GO) test -c -tags cuda -o $(CUDA_BUILD)/check13/ $(CUDA_TEST_PKGS)'
	@bash gpu/cuda/scripts/check-linkage.sh $(CUDA_BUILD)/check12/instructgo $(CUDA_BUILD)/check13/instructgo
	@echo "cuda-check: ok"

## cuda-emu-test: the cuda parity tests with every kernel run by a CPU emulator of CUDA (gpu/cuda/emu): kernels against the CPU backend, the command line on both backends, and 200 bf16 pretraining steps against fp32 (about 12 minutes), no GPU needed
EMU_BUILD     := build/cudaemu
cuda-emu-test: | cuda-tools12
	@bash gpu/cuda/emu/build.sh "$(NVCC) -ccbin $(CUDA_HOSTCXX)" kernels $(EMU_BUILD)
	$(GO) vet -tags cuda,cudaemu ./gpu/cuda/ ./cmd/instructgo/
	$(GO) test -count=1 -tags cuda,cudaemu ./gpu/cuda/
	$(GO) test -count=1 -timeout 30m -tags cuda,cudaemu -run 'TestEmulatedCUDAMatchesCPU|TestEmulatedBF16TracksFP32' ./cmd/instructgo/

## build-cuda: the instructgo binary with the cuda backend in bin/instructgo-cuda (needs the NVIDIA driver to run)
build-cuda: kernels
	$(WITH_CUDA12) $(GO) build -tags cuda -ldflags '$(LDFLAGS)' -o $(BIN_CUDA) ./cmd/instructgo

## gpu-bundle: build/gpu-bundle and build/gpu-bundle.tar.gz, for a GPU machine without Go or network: the cuda binary, the gpu/cuda test binary (the parity tests), the runner, the PyTorch and TRL baseline scripts and TRL's wheels (bench/trl/requirements.txt, downloaded once from PyPI); run.sh runs it all in one command
TRL_WHEELS    := build/wheels/trl
BUNDLE_MAX_MB := 56
PIP_DOWNLOAD  := $(PYTHON) -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
                 --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
                 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
gpu-bundle: kernels $(TRL_WHEELS)/.done
	rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)/tests $(BUNDLE)/python $(BUNDLE)/wheels
	$(WITH_CUDA12) sh -c '$(GO) build -tags cuda -ldflags "-s -w $(LDFLAGS)" -o $(BUNDLE)/instructgo ./cmd/instructgo && \
		$(GO) test -c -tags cuda -ldflags "-s -w" -o $(BUNDLE)/tests/cuda.test ./gpu/cuda'
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $(BUNDLE)/bundle-runner ./gpu/cuda/bundle
	cp gpu/cuda/bundle/run.sh gpu/cuda/bundle/trl-venv.sh $(BUNDLE)/ && chmod +x $(BUNDLE)/run.sh $(BUNDLE)/trl-venv.sh
	cp bench/pytorch/train_step.py bench/pytorch/ops.py bench/trl/ppo_iteration.py $(BUNDLE)/python/
	cp $(TRL_WHEELS)/*.whl $(BUNDLE)/wheels/
	cp $(CUDA_BUILD)/ptxas.txt $(CUDA_BUILD)/ptxas-summary.txt $(BUNDLE)/
	@bash gpu/cuda/scripts/check-linkage.sh $(BUNDLE)/instructgo $(BUNDLE)/tests/*.test
	tar czf $(BUNDLE).tar.gz -C $(dir $(BUNDLE)) $(notdir $(BUNDLE))
	@du -sh $(BUNDLE) | awk '{print "gpu-bundle: " $$2 " (" $$1 "); run ./run.sh [OUTDIR] on the GPU machine"}'
	@size=$$(stat -c %s $(BUNDLE).tar.gz); echo "gpu-bundle: $(BUNDLE).tar.gz $$size bytes (limit $(BUNDLE_MAX_MB) MiB): tar xzf it there, then run gpu-bundle/run.sh"; \
		[ $$size -le $$(( $(BUNDLE_MAX_MB) * 1048576 )) ] || { echo "gpu-bundle: compressed bundle over $(BUNDLE_MAX_MB) MiB"; exit 1; }

$(TRL_WHEELS)/.done: bench/trl/requirements.txt
	rm -rf $(TRL_WHEELS) && mkdir -p $(TRL_WHEELS)
	$(PIP_DOWNLOAD) -d $(TRL_WHEELS) -r bench/trl/requirements.txt
	@touch $@