#!/usr/bin/env bash
# Install llama-cpp-python into a venv as a PORTABLE build: never -march=native, never AMX.
#   scripts/build-llama.sh VENV_PYTHON
#   scripts/build-llama.sh --print-flags     the CMake flags this CPU gets (COOPBOT_CPUINFO: another cpuinfo file)
#
# Why: a native build on a CPU that advertises AMX compiles ggml's AMX kernels, and a virtual machine
# that does not grant AMX tiles kills the process at the first matrix multiply (see
# ../shared/notes/local-llm.md). The instruction sets are chosen here from /proc/cpuinfo (AVX, AVX2,
# FMA, F16C, BMI2, AVX-VNNI, AVX-512 and its extensions where all listed), AMX is always off.
#
# pip caches a wheel built from an sdist by name and version only, so a wheel compiled natively on
# another machine could be reused silently. This script therefore builds with --no-cache-dir into its
# own cache folder whose name carries the version and the exact CMake flags, stamps the installed
# package with those flags, and refuses a library that contains AMX tile instructions.
# COOPBOT_LLAMA_ISA=baseline builds AVX2/FMA/F16C only (a wheel to copy to other x86-64 machines).
set -euo pipefail
PY=${1:?usage: scripts/build-llama.sh VENV_PYTHON | --print-flags}
VERSION=0.3.36
ISA=${COOPBOT_LLAMA_ISA:-auto}
CPUINFO=${COOPBOT_CPUINFO:-/proc/cpuinfo}
ARCH=${COOPBOT_ARCH:-$(uname -m)}

cpu_flags() { grep -m1 '^flags' "$CPUINFO" 2>/dev/null | cut -d: -f2 || true; }
has() { [[ " $(cpu_flags) " == *" $1 "* ]]; }
on_off() { if has "$1"; then echo ON; else echo OFF; fi; }

isa_flags() {
  if [ "$ARCH" != "x86_64" ]; then
    return  # ggml's generic flags for this architecture; NATIVE stays off
  fi
  if [ "$ISA" = "baseline" ]; then
    echo "-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF" \
      "-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF"
    return
  fi
  local avx512=OFF
  # ggml's AVX512 switch compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw: all must be listed.
  if has avx512f && has avx512cd && has avx512vl && has avx512dq && has avx512bw; then avx512=ON; fi
  local vbmi=OFF vnni=OFF bf16=OFF
  if [ "$avx512" = ON ]; then vbmi=$(on_off avx512vbmi); vnni=$(on_off avx512_vnni); bf16=$(on_off avx512_bf16); fi
  echo "-DGGML_AVX=$(on_off avx) -DGGML_AVX2=$(on_off avx2) -DGGML_FMA=$(on_off fma) -DGGML_F16C=$(on_off f16c)" \
    "-DGGML_BMI2=$(on_off bmi2) -DGGML_AVX_VNNI=$(on_off avx_vnni) -DGGML_AVX512=$avx512" \
    "-DGGML_AVX512_VBMI=$vbmi -DGGML_AVX512_VNNI=$vnni -DGGML_AVX512_BF16=$bf16"
}

FLAGS="-DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF"
FLAGS="$FLAGS -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF $(isa_flags)"
FLAGS="$FLAGS -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
FLAGS="$FLAGS -DLLAMA_BUILD_SERVER=OFF ${COOPBOT_LLAMA_EXTRA_CMAKE_ARGS:-}"
FLAGS=$(echo "$FLAGS" | tr -s ' ' | sed 's/ $//')
if [ "$PY" = "--print-flags" ]; then
  echo "$FLAGS"
  exit 0
fi
KEY=$(printf '%s %s %s' "$VERSION" "$ARCH" "$FLAGS" | sha256sum | cut -c1-16)

site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
STAMP="$site/llama_cpp/lib/coopbot-build.txt"

amx_free() {  # the library must hold no AMX tile instruction, whatever the flags said
  local lib
  lib=$(ls "$site"/llama_cpp/lib/libggml-cpu.so* 2>/dev/null | head -1)
  [ -n "$lib" ] || { echo "build-llama: libggml-cpu.so not found under $site/llama_cpp/lib" >&2; return 1; }
  if ! command -v objdump >/dev/null; then
    echo "build-llama: warning: objdump missing (apt-get install binutils); AMX check skipped" >&2
    return 0
  fi
  if objdump -d --no-show-raw-insn "$lib" | grep -qE '\s(ldtilecfg|tileloadd|tdpb[su][su]d|tdpbf16ps)\s'; then
    echo "build-llama: $lib contains AMX tile instructions; it would crash on machines that deny AMX" >&2
    return 1
  fi
}

if [ -f "$STAMP" ] && [ "$(head -1 "$STAMP")" = "$KEY" ] && amx_free; then
  exit 0  # this exact portable build is installed
fi

WHEELS="${COOPBOT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coopbot/wheels}/llama-cpp-python-$VERSION-$KEY"
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "setup: building llama-cpp-python $VERSION (portable: GGML_NATIVE=OFF, no AMX; about 6 min on 2 cores, once)"
  echo "setup:   flags: $FLAGS"
  mkdir -p "$WHEELS.tmp"
  CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-cache-dir \
    --no-binary llama-cpp-python -w "$WHEELS.tmp" "llama-cpp-python==$VERSION"
  rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
fi
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-*.whl
amx_free
printf '%s\n%s\n' "$KEY" "$FLAGS" >"$STAMP"
echo "setup: llama-cpp-python $VERSION installed (portable build $KEY)"
