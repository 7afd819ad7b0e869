# Build, test and release targets. `make test` is the test command the README and CI use.
TARGET  := x86_64-unknown-linux-gnu
BIN     := x509-certificate-exporter
RELEASE := target/$(TARGET)/release/$(BIN)
ROOTFS  := target/rootfs

.PHONY: build release rootfs test lint bench bench-smoke fuzz fuzz-smoke fmt clean

build:
	cargo build --locked

# Static, stripped, LTO binary (the one the container image ships).
release:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target $(TARGET)
	@ls -l $(RELEASE) | awk '{print "release binary: " $$5 " bytes"}'

# The exact filesystem of the runtime image (Containerfile's last stage): the binary only.
rootfs: release
	rm -rf $(ROOTFS)
	install -D -m 0755 $(RELEASE) $(ROOTFS)/usr/local/bin/$(BIN)
	@echo "rootfs: $(ROOTFS) ($$(du -sh $(ROOTFS) | cut -f1))"

# The image tests run the rootfs tree, so it is built first.
test: rootfs
	./scripts/test-deps.sh
	cargo test --locked

# Speed and memory against floors measured in the same run; writes BENCHMARKS.md.
# 20 minutes of it is churn at 10k files (BENCH_CHURN_SECONDS shortens it).
bench:
	./scripts/test-deps.sh
	cargo bench --locked --bench bench
	cargo bench --locked --bench kube

# CI's smoke check: the 10k corpus and 60 s of churn, failing only on ratios over twice their
# target. About 4 minutes on 2 cores, plus the build.
bench-smoke:
	cargo bench --locked --bench bench -- --smoke

# libFuzzer on the stable toolchain (fuzz/run.sh): the committed regressions, then each
# target for 60 s (FUZZ_SECONDS), from fuzz/seeds. A crash input lands in fuzz/artifacts/.
FUZZ_SECONDS ?= 60
fuzz:
	./fuzz/run.sh $(FUZZ_SECONDS)

# CI's short run: the regressions, then 15 s a target.
fuzz-smoke:
	./fuzz/run.sh 15

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

fmt:
	cargo fmt

clean:
	cargo clean
