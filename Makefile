# kvsim — one non-recursive Makefile. Objects go to $(BUILD) (default build/).
#
#   make run     install what is missing, build, run the main job
#   make test    install what is missing, build, run every test (no GPU needed)
#   make check   the tests under ASan/UBSan, plus the long stress runs
#   make bench   benchmark figures
#   make gpu     the CUDA parts, when nvcc is present
#   make deps    install missing Debian packages (apt-get; sudo when not root)
#
# Honours CC, CPPFLAGS, CFLAGS, LDFLAGS (e.g. CPPFLAGS=-I$P/usr/include for a private prefix).

CC      ?= cc
comma   := ,
NVCC    ?= nvcc
BUILD   ?= build
CFLAGS  ?= -O2 -g

KV_CFLAGS   := -std=c11 -Wall -Wextra -Wpedantic -Werror -MMD -MP
KV_CPPFLAGS := -Isim -Isim/alloc -Itraces -Iworkloads -Ianalysis -D_POSIX_C_SOURCE=200809L
KV_LDLIBS   := -lcsv -ljansson -linih -lz -lgsl -lgslcblas -lm
TEST_LDLIBS := -lcmocka

DEB_PKGS := libgsl-dev libcsv-dev libcmocka-dev gnuplot-nox libjansson-dev libinih-dev \
            zlib1g-dev pkg-config libopenmpi-dev openmpi-bin

# Stress operations per strategy: 1e5 in `make test`, 1e6 in `make check`.
STRESS_OPS ?= 100000

ALLOC_SRC := $(wildcard sim/alloc/*.c)
LIB_SRC   := $(wildcard traces/*.c workloads/*.c analysis/*.c)
KVSIM_SRC := $(wildcard sim/*.c)
TEST_SRC  := $(wildcard tests/test_*.c)

ALLOC_OBJ := $(ALLOC_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
KVSIM_OBJ := $(KVSIM_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIBALLOC  := $(BUILD)/libkvalloc.a
LIBKV     := $(BUILD)/libkvsim.a
KVSIM     := $(BUILD)/kvsim

.PHONY: all run plots mpi test check bench gpu gpu-test gpu-bench gpu-build-check deps clean format fuzz gate baseline
.DEFAULT_GOAL := all
.SECONDARY:

all: $(KVSIM)

# ------------------------------------------------------------------------------------------
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(KV_CPPFLAGS) $(CPPFLAGS) $(KV_CFLAGS) $(CFLAGS) -c $< -o $@

$(LIBALLOC): $(ALLOC_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# `make mpi`: kvsim built with mpicc and -DKV_MPI, for `mpirun -np N build/mpi/kvsim sweep ...`.
MPICC    ?= mpicc
HAVE_MPI := $(shell command -v $(MPICC) 2>/dev/null)
MPI_BIN  := $(BUILD)/mpi/kvsim

mpi:
ifeq ($(HAVE_MPI),)
	@echo "mpi: skipped: mpicc not found (make deps installs libopenmpi-dev)"
else
	@$(MAKE) --no-print-directory $(MPI_BIN)
endif

$(MPI_BIN): $(KVSIM_SRC) $(LIB_SRC) $(ALLOC_SRC) $(wildcard sim/*.h sim/alloc/*.h traces/*.h workloads/*.h analysis/*.h)
	@mkdir -p $(dir $@)
	$(MPICC) $(KV_CPPFLAGS) -DKV_MPI $(CPPFLAGS) $(KV_CFLAGS) $(CFLAGS) -o $@ \
	  $(KVSIM_SRC) $(LIB_SRC) $(ALLOC_SRC) $(LDFLAGS) $(KV_LDLIBS)

# Everything but main: traces, workloads and the simulator's modules, for kvsim and the tests.
$(LIBKV): $(LIB_OBJ) $(filter-out $(BUILD)/sim/main.o,$(KVSIM_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(KVSIM): $(BUILD)/sim/main.o $(LIBKV) $(LIBALLOC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(KV_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIBKV) $(LIBALLOC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(TEST_LDLIBS) $(KV_LDLIBS)

-include $(ALLOC_OBJ:.o=.d) $(LIB_OBJ:.o=.d) $(KVSIM_OBJ:.o=.d) $(TEST_BIN:=.d)

# ------------------------------------------------------------------------------------------
# The main job: every strategy on the bundled Azure conversation trace, Llama-3-8B on one H100,
# at 3x the trace's arrival rate (results/default/README.md says why), into results/default/
# with its figures. `make plots` also redoes the code trace's (results/azure2023_code/).
RUN_ARGS := traces/data/azure2023_conv.csv --model Llama-3-8B --gpu H100-80GB --rate-scale 3 \
            --max-num-seqs 1024 --no-wall-time --plot -o results/default
run: deps
	@$(MAKE) --no-print-directory all
	./$(KVSIM) compare $(RUN_ARGS)

plots: run
	./$(KVSIM) compare traces/data/azure2023_code.csv --model Llama-3-8B --gpu H100-80GB \
	  --rate-scale 3 --max-num-seqs 1024 --no-wall-time --plot -o results/azure2023_code

# Every test binary; a closing "N passed, M failed" line sums cmocka's counts over all of them.
test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN) mpi
	@$(MAKE) --no-print-directory gpu-build-check
	@rm -f $(BUILD)/test.log; fail=0; \
	for t in $(TEST_BIN); do \
	  KV_STRESS_OPS=$(STRESS_OPS) KVSIM_MPI_BIN=$(if $(HAVE_MPI),$(MPI_BIN)) \
	    ./$$t > $(BUILD)/test.one 2>&1 || fail=1; \
	  cat $(BUILD)/test.one; cat $(BUILD)/test.one >> $(BUILD)/test.log; \
	done; \
	awk '/\[  PASSED  \]/ {p += $$4} /\[  FAILED  \] [0-9]/ {f += $$4} \
	     END {printf "%d passed, %d failed\n", p, f}' $(BUILD)/test.log; \
	exit $$fail

# The regression gate: every strategy on both bundled Azure traces, against results/baseline/.
# A change that shifts simulated behaviour on purpose refreshes the baseline with
# `make baseline` and commits it.
GATE_TRACES := azure2023_conv azure2023_code
GATE_ARGS   := --model Llama-3-8B --gpu H100-80GB --rate-scale 3 --max-num-seqs 1024 --no-wall-time
GATE_RULES  := analysis/gate-rules.ini

gate: all
	@rc=0; for t in $(GATE_TRACES); do \
	  ./$(KVSIM) compare traces/data/$$t.csv $(GATE_ARGS) -o $(BUILD)/gate/$$t > /dev/null || exit 2; \
	  for d in results/baseline/$$t/*/; do s=$$(basename $$d); \
	    ./$(KVSIM) gate --baseline $$d --current $(BUILD)/gate/$$t/$$s --rules $(GATE_RULES) \
	      --junit $(BUILD)/gate/$$t-$$s.xml > $(BUILD)/gate/$$t-$$s.txt; r=$$?; \
	    if [ $$r -ne 0 ]; then cat $(BUILD)/gate/$$t-$$s.txt; rc=$$r; \
	    else echo "gate: $$t $$s: $$(tail -1 $(BUILD)/gate/$$t-$$s.txt)"; fi; \
	  done; \
	done; exit $$rc

baseline: all
	@for t in $(GATE_TRACES); do \
	  ./$(KVSIM) compare traces/data/$$t.csv $(GATE_ARGS) -o results/baseline/$$t; \
	  rm -f results/baseline/$$t/*/requests.csv results/baseline/$$t/*/timeline.csv; \
	done

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

check: deps
	@$(MAKE) --no-print-directory deps DEB_PKGS="clang libclang-rt-14-dev"
	@$(MAKE) --no-print-directory test BUILD=$(BUILD)/san CFLAGS="$(SAN_FLAGS)" \
	  LDFLAGS="$(LDFLAGS) -fsanitize=address,undefined" STRESS_OPS=1000000
	@$(MAKE) --no-print-directory fuzz

# ------------------------------------------------------------------------------------------
# libFuzzer targets, one per trace reader, each run FUZZ_SECONDS on its seed corpus in
# tests/fuzz/<format>/ (inputs that once crashed stay there as regression cases).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_FORMATS := native azure burstgpt mooncake
FUZZ_BIN     := $(FUZZ_FORMATS:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_SRC     := traces/reader.c sim/alloc/status.c

$(BUILD)/fuzz/fuzz_%: tests/fuzz_reader.c $(FUZZ_SRC) traces/reader.h sim/alloc/status.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  $(KV_CPPFLAGS) $(CPPFLAGS) -DFUZZ_FORMAT=KV_TRACE_$(shell echo $* | tr a-z A-Z) \
	  tests/fuzz_reader.c $(FUZZ_SRC) -o $@ $(LDFLAGS) -lcsv -ljansson -lz

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_FORMATS); do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$f; \
	  echo "fuzz: $$f reader for $(FUZZ_SECONDS) s"; \
	  $(BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=4096 -print_final_stats=0 -artifact_prefix=$(BUILD)/fuzz/crash-$$f- \
	    $(BUILD)/fuzz/corpus-$$f tests/fuzz/$$f 2>$(BUILD)/fuzz/$$f.log \
	    || { tail -40 $(BUILD)/fuzz/$$f.log; echo "fuzz: $$f reader failed (input in $(BUILD)/fuzz/)"; exit 1; }; \
	  grep -E '^#[0-9]+.*DONE' $(BUILD)/fuzz/$$f.log | tail -1; \
	done

bench: deps
	@$(MAKE) --no-print-directory all
	./$(KVSIM) bench alloc
	./$(KVSIM) bench trace
	./$(KVSIM) bench sim

# ------------------------------------------------------------------------------------------
# CUDA parts: built when nvcc is present, skipped with a plain message otherwise.
GPU_SRC := $(wildcard gpu/*.cu)
HAVE_NVCC := $(shell command -v $(NVCC) 2>/dev/null)

NVCC_FLAGS := -arch=sm_90 -O2 -std=c++17 -Werror all-warnings -Xcompiler -Wall,-Wextra
GPU_OBJ := $(GPU_SRC:%.cu=$(BUILD)/%.o)
# nvcc takes -L itself and the rest (-Wl,...) through -Xlinker
NVCC_LDFLAGS := $(foreach f,$(LDFLAGS),$(if $(filter -L%,$(f)),$(f),$(if $(filter -Wl$(comma)%,$(f)),-Xlinker $(subst -Wl$(comma),,$(f)),-Xcompiler $(f))))
KVGPU   := $(BUILD)/kvgpu

gpu:
ifeq ($(HAVE_NVCC),)
	@echo "gpu: skipped: nvcc not found (the CUDA parts need the CUDA Toolkit)"
else
	@$(MAKE) --no-print-directory $(KVGPU)
endif

$(BUILD)/gpu/%.o: gpu/%.cu $(wildcard gpu/*.h sim/*.h sim/alloc/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) $(KV_CPPFLAGS) -Igpu $(CPPFLAGS) -c $< -o $@

$(KVGPU): $(GPU_OBJ) $(LIBKV) $(LIBALLOC)
	$(NVCC) $(NVCC_FLAGS) -o $@ $(GPU_OBJ) $(LIBKV) $(LIBALLOC) $(NVCC_LDFLAGS) $(KV_LDLIBS) -lcublas -lcuda

# On a machine with a GPU: every kernel and swap path against CPU float64 references.
HAVE_GPU := $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU')

gpu-test: gpu
ifeq ($(HAVE_NVCC),)
	@echo "gpu-test: skipped: nvcc not found"
else ifeq ($(HAVE_GPU),0)
	@echo "gpu-test: skipped: no GPU on this machine (kvgpu built; run make gpu-test where nvidia-smi lists one)"
else
	./$(KVGPU) test
	@$(MAKE) --no-print-directory all
	gpu/replay-check.sh $(BUILD)/gpu-replay
endif

# Writes results/gpu/<device>/ (the device's name: h200, h100), bench.log and bench.csv there.
gpu-bench: gpu
	./$(KVGPU) bench

# `make test` compiles gpu/ where nvcc exists, so a broken CUDA build is caught without a GPU.
# (Not in the sanitizer build of `make check`: kvgpu's objects are not instrumented, and the
# plain `make test` has compiled them already.)
gpu-build-check:
ifneq ($(findstring -fsanitize,$(LDFLAGS)),)
	@echo "gpu: skipped in the sanitizer build (make test builds it)"
else
	@$(MAKE) --no-print-directory gpu
endif

# ------------------------------------------------------------------------------------------
deps:
	@missing=""; \
	for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all present"; exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "deps: missing$$missing, and apt-get is not available: install them by hand" >&2; \
	  exit 1; fi; \
	sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	echo "deps: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q --no-install-recommends $$missing \
	  || { $$sudo apt-get update -q && $$sudo apt-get install -y -q --no-install-recommends $$missing; }

format:
	clang-format -i $(ALLOC_SRC) $(wildcard sim/alloc/*.h) $(KVSIM_SRC) $(wildcard sim/*.h) $(TEST_SRC)

clean:
	rm -rf $(BUILD)
