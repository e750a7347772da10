# rollout-apiserver: build, test and run the rollout.kruise.io aggregated API server.
SHELL := /usr/bin/env bash -o pipefail
.DEFAULT_GOAL := build

BIN          := $(CURDIR)/bin
GO_TEST      := go test -count=1
FUZZTIME     ?= 30s
TEST_TIMEOUT ?= 30m

.PHONY: build
build: ## Build the server and the kubectl plugin into bin/.
	go build -o $(BIN)/rollout-apiserver ./cmd/apiserver
	@if [ -d cmd/kubectl-rollouts ]; then go build -o $(BIN)/kubectl-rollouts ./cmd/kubectl-rollouts; fi

.PHONY: tools
tools: ## Build the local control plane (kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok) into bin/.
	hack/build-tools.sh

.PHONY: test
test: tools build verify ## make verify, then unit, fuzz-seed, integration and end-to-end tests.
	$(GO_TEST) -timeout $(TEST_TIMEOUT) ./...

.PHONY: test-unit
test-unit: ## Unit tests and fuzz seed corpora only (no servers).
	$(GO_TEST) ./pkg/... ./cmd/...

.PHONY: test-integration
test-integration: ## The real server in-process on embedded etcd.
	$(GO_TEST) ./test/integration/...

.PHONY: test-e2e
test-e2e: tools build ## End-to-end tests on a local control plane.
	$(GO_TEST) -timeout $(TEST_TIMEOUT) ./test/e2e/...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each.
	@for pkg in $$(go list ./pkg/...); do \
	  for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$target ($(FUZZTIME))"; \
	    go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: bench
bench: ## API benchmarks against the in-process server (create, get, list, watch).
	go test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/integration/bench/

.PHONY: bench-api
bench-api: tools build ## Our API vs the Kruise Rollout CRD through one kube-apiserver.
	go run ./test/e2e/bench/api $(BENCH_API_FLAGS)

.PHONY: bench-controller
bench-controller: tools build ## N Deployments released through Rollouts vs rolling on their own; promote latency, CPU, RSS.
	go run ./test/e2e/bench/controller $(BENCH_CONTROLLER_FLAGS)

.PHONY: bench-rollback
bench-rollback: tools build ## Failing metric check → workload back at stable, with a real Prometheus: p50/p99 over 10+ runs.
	go run ./test/e2e/bench/rollback $(BENCH_ROLLBACK_FLAGS)

.PHONY: generate
generate: ## Regenerate clients, deepcopy, conversion, defaults and OpenAPI.
	hack/update-codegen.sh

.PHONY: verify
verify: ## gofmt, go vet, the generated-code check and no secrets, etcd data or big files tracked.
	hack/verify-tracked-files.sh
	@out=$$(gofmt -l cmd pkg test hack 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	hack/verify-codegen.sh

.PHONY: run
run: tools build ## Bring up a local control plane with the server registered and the example applied.
	hack/local-up.sh

.PHONY: down
down: ## Stop what `make run` started.
	hack/local-down.sh

.PHONY: clean
clean:
	rm -rf bin _output
