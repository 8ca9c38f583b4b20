# thaw infra targets. Included by the top-level Makefile (`include infra/infra.mk`)
# or run directly: `make -f infra/infra.mk <target> ENV=qa`.
#
#   synth       ENV=dev|qa|prod  build the Lambdas (one cargo-lambda build, scripts/build-lambdas.ts) and
#                                synthesize infra/cdk.out.<env>, offline
#   deploy      ENV=dev|qa|prod  deploy exactly infra/cdk.out.<env>; fails fast without AWS credentials
#   bootstrap   ENV=dev|qa|prod  CDK bootstrap of the env's account/region (ops/deploy.md)
#   infra-test                   assertion, cdk-nag, ASL contract and config tests (no build, no AWS)
#   infra-lint                   tsc, cfn-lint, checkov, asl-validator on templates of all envs
#
# Tools: npm packages pinned in infra/package-lock.json (npm ci into $(THAW_CACHE)/infra-node,
# linked as infra/node_modules); Python tools pinned in
# infra/requirements-tools.txt, installed into $(THAW_CACHE)/infra-venv on first use.

INFRA_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
INFRA_ABS := $(abspath $(INFRA_DIR))
THAW_CACHE ?= $(HOME)/.cache/thaw
# One Cargo target directory for every build (the top-level Makefile exports the same): the
# Lambdas that synth bundles (one `cargo lambda build --bin <name>` per RustFunction) then share
# their compiled dependencies, and CI caches one directory.
export CARGO_TARGET_DIR ?= $(THAW_CACHE)/target
INFRA_VENV := $(THAW_CACHE)/infra-venv
INFRA_LINT_OUT := $(THAW_CACHE)/infra-lint
INFRA_ENVS := dev qa prod
ENV ?=
# Offline, credential-free synth: no EC2 metadata probing, no lookups, no notices or telemetry (cdk.json).
INFRA_OFFLINE := AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_VERSION_CHECK=true
CDK := $(INFRA_OFFLINE) PATH="$(INFRA_VENV)/bin:$$PATH" npx --no-install cdk

.PHONY: synth deploy bootstrap infra-test infra-lint infra-deps infra-venv infra-check-env infra-check-credentials

infra-check-env:
	@case "$(ENV)" in dev|qa|prod) ;; *) echo "ENV must be dev, qa or prod (e.g. make synth ENV=qa); got '$(ENV)'" >&2; exit 2;; esac

# The npm packages live outside the clone, like the venvs: one `npm ci` per package.json +
# package-lock.json + Node version (their hash names the directory), installed in a scratch
# directory and renamed into place (two clones installing at once cannot mix), then
# infra/node_modules is a link to it. A fresh clone of an unchanged lockfile installs nothing
# (no file prerequisites: a clone's files are always newer than the cache; the hash decides).
INFRA_NODE_KEY := $(shell { cat $(INFRA_DIR)/package.json $(INFRA_DIR)/package-lock.json; node --version; } 2>/dev/null | sha256sum | cut -c1-16)
INFRA_NODE_DIR := $(THAW_CACHE)/infra-node/$(INFRA_NODE_KEY)
$(INFRA_NODE_DIR)/node_modules/.thaw-installed:
	@mkdir -p $(THAW_CACHE)/infra-node
	@scratch=$$(mktemp -d $(INFRA_NODE_DIR).XXXXXX) \
	&& cp $(INFRA_DIR)/package.json $(INFRA_DIR)/package-lock.json $$scratch/ \
	&& (cd $$scratch && npm ci --no-audit --no-fund --loglevel=error) \
	&& touch $$scratch/node_modules/.thaw-installed \
	&& { mv -T $$scratch $(INFRA_NODE_DIR) 2>/dev/null || rm -rf $$scratch; } \
	&& { test -f $@ || { echo "$(INFRA_NODE_DIR) exists but holds no complete install: delete it and retry" >&2; exit 1; }; }
infra-deps: $(INFRA_NODE_DIR)/node_modules/.thaw-installed
	@[ "$$(readlink $(INFRA_DIR)/node_modules)" = "$(INFRA_NODE_DIR)/node_modules" ] \
		|| { rm -rf $(INFRA_DIR)/node_modules && ln -s $(INFRA_NODE_DIR)/node_modules $(INFRA_DIR)/node_modules; }

# A venv is (re)installed when its requirements file's content changed, not its mtime (a fresh
# clone's files are newer than any cache): the marker's name holds the content's hash.
#   $(call venv_marker,VENV,REQUIREMENTS)   the marker file of REQUIREMENTS' current content
#   $(call venv_install,VENV,REQUIREMENTS)  the recipe that installs it and writes that marker
venv_marker = $(1)/.thaw-requirements-$(shell sha256sum < $(2) | cut -c1-16)
define venv_install
	python3 -m venv $(1)
	$(1)/bin/pip install --quiet --disable-pip-version-check -r $(2)
	@rm -f $(1)/.thaw-requirements-* && touch $(call venv_marker,$(1),$(2))
endef
INFRA_VENV_MARKER := $(call venv_marker,$(INFRA_VENV),$(INFRA_DIR)/requirements-tools.txt)
$(INFRA_VENV_MARKER):
	$(call venv_install,$(INFRA_VENV),$(INFRA_DIR)/requirements-tools.txt)
infra-venv: $(INFRA_VENV_MARKER)

synth: infra-check-env infra-deps infra-venv
	@rm -rf $(INFRA_DIR)/cdk.out.$(ENV)
	@start=$$(date +%s); \
	cd $(INFRA_DIR) && PATH="$(INFRA_VENV)/bin:$$PATH" node --import tsx scripts/build-lambdas.ts $(ENV) \
	&& built=$$(date +%s) \
	&& $(CDK) synth --no-lookups --quiet -c env=$(ENV) -c thaw:deployId=$$(date -u +%Y%m%dT%H%M%SZ) \
		--output cdk.out.$(ENV) \
	&& echo "synthesized $(INFRA_DIR)/cdk.out.$(ENV)/Thaw-$(ENV).template.json in $$(( $$(date +%s) - start )) s (Lambda build $$(( built - start )) s)"

# Credentials: env keys, a profile, web identity or SSO are accepted only if STS answers,
# and only for the account in infra/config/<env>.json.
infra-check-credentials: infra-check-env
	@want=$$(node -e 'console.log(require("./$(INFRA_DIR)/config/$(ENV).json").account)'); \
	if [ -z "$$AWS_ACCESS_KEY_ID$$AWS_PROFILE$$AWS_WEB_IDENTITY_TOKEN_FILE$$AWS_CONTAINER_CREDENTIALS_FULL_URI" ] \
	   && [ ! -s "$$HOME/.aws/credentials" ] && [ ! -s "$$HOME/.aws/config" ]; then \
		echo "no AWS credentials: export AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) for account $$want, then retry. See ops/deploy.md." >&2; exit 3; fi; \
	command -v aws >/dev/null || { echo "the aws CLI is needed to verify credentials (pip install awscli)" >&2; exit 3; }; \
	got=$$(AWS_EC2_METADATA_DISABLED=true aws sts get-caller-identity --query Account --output text 2>/dev/null) \
		|| { echo "AWS credentials were found but STS rejected them (expired session? run aws sso login). Nothing was deployed." >&2; exit 3; }; \
	[ "$$got" = "$$want" ] || { echo "credentials are for account $$got but infra/config/$(ENV).json deploys to $$want. Nothing was deployed." >&2; exit 3; }

deploy: infra-check-env infra-check-credentials infra-deps
	@test -f $(INFRA_DIR)/cdk.out.$(ENV)/Thaw-$(ENV).template.json \
		|| { echo "no $(INFRA_DIR)/cdk.out.$(ENV): run make synth ENV=$(ENV) first (deploy ships exactly what synth produced)" >&2; exit 2; }
	cd $(INFRA_DIR) && $(CDK) deploy --app cdk.out.$(ENV) Thaw-$(ENV) --require-approval broadening --concurrency 1

bootstrap: infra-check-env infra-check-credentials infra-deps
	@target=$$(node -e 'const c=require("./$(INFRA_DIR)/config/$(ENV).json"); console.log(`aws://$${c.account}/$${c.region}`)'); \
	cd $(INFRA_DIR) && $(CDK) bootstrap $$target --termination-protection \
		--tags project=thaw --tags environment=$(ENV)

infra-test: infra-deps
	cd $(INFRA_DIR) && node --import tsx test/all.ts

infra-lint: infra-deps infra-venv
	cd $(INFRA_DIR) && npx --no-install tsc --noEmit -p tsconfig.json
	@rm -rf $(INFRA_LINT_OUT) && mkdir -p $(INFRA_LINT_OUT)
	@for e in $(INFRA_ENVS); do \
		(cd $(INFRA_DIR) && THAW_SKIP_BUNDLING=1 $(CDK) synth --no-lookups --quiet -c env=$$e --output $(INFRA_LINT_OUT)/cdk.out.$$e >/dev/null) || exit 1; \
	done
	$(INFRA_VENV)/bin/cfn-lint --config-file $(INFRA_DIR)/lint/cfn-lint.yaml -- $(INFRA_LINT_OUT)/cdk.out.*/Thaw-*.template.json
	$(INFRA_VENV)/bin/checkov --config-file $(INFRA_DIR)/lint/checkov.yaml $(foreach e,$(INFRA_ENVS),-f $(INFRA_LINT_OUT)/cdk.out.$(e)/Thaw-$(e).template.json)
	cd $(INFRA_DIR) && node --import tsx scripts/render-asl.ts $(INFRA_LINT_OUT) $(INFRA_ENVS) \
		&& for e in $(INFRA_ENVS); do npx --no-install asl-validator --json-path $(INFRA_LINT_OUT)/sync.$$e.asl.json || exit 1; done

# ------------------------------------------------------------------ sfn-local
# The real state machine, locally: moto's Step Functions interpreter runs statemachines/sync.asl.json
# (Distributed Map with S3 ItemReader included) against the real Lambda binaries under
# `cargo lambda watch` (cargo-lambda from the infra venv), the harness PostgreSQL and the Snowflake
# emulator; the end state must equal `thaw run`'s. See tests/sfn_local/README.md.
SFN_VENV := $(THAW_CACHE)/sfn-venv
SFN_VISITS ?= 400
SFN_SEED ?= 7

SFN_VENV_MARKER := $(call venv_marker,$(SFN_VENV),tests/sfn_local/requirements.txt)
$(SFN_VENV_MARKER):
	$(call venv_install,$(SFN_VENV),tests/sfn_local/requirements.txt)

.PHONY: sfn-local sfn-local-test
sfn-local: infra-venv $(SFN_VENV_MARKER) ## run the sync state machine locally (moto + cargo lambda watch) and compare with thaw run
	PATH="$(INFRA_VENV)/bin:$$PATH" python3 tests/harness.py run -- \
		$(SFN_VENV)/bin/python tests/sfn_local/run.py --visits $(SFN_VISITS) --seed $(SFN_SEED)

sfn-local-test: infra-venv $(SFN_VENV_MARKER) ## pytest: unit tests of the runner + the full sfn-local scenario (bounded)
	PATH="$(INFRA_VENV)/bin:$$PATH" $(SFN_VENV)/bin/pytest -q tests/sfn_local
