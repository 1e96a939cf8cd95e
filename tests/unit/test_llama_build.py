"""The llama.cpp build is portable: flags chosen from /proc/cpuinfo, never native, never AMX.

A native build on a CPU that advertises AMX crashed the whole server on a VM that denies AMX tiles
(../shared/notes/local-llm.md). These tests read the build script's choices for made-up CPUs and
disassemble the library that is installed here.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

from ..conftest import ROOT

SCRIPT = ROOT / "scripts" / "build-llama.sh"
AMX_INSTRUCTIONS = re.compile(r"\s(ldtilecfg|sttilecfg|tileloadd|tileloaddt1|tilestored|tdpb[su][su]d|tdpbf16ps)\s")
SAPPHIRE_RAPIDS = (
    "fpu sse2 avx avx2 fma f16c bmi2 avx_vnni avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi "
    "avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16"
)


def _flags(tmp_path: Path, cpu: str, **env: str) -> dict[str, str]:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {cpu}\n", encoding="utf-8")
    run = subprocess.run(
        ["bash", str(SCRIPT), "--print-flags"],
        env={"PATH": "/usr/bin:/bin", "COOPBOT_CPUINFO": str(cpuinfo), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(re.findall(r"-D(\w+)=(\S+)", run.stdout))


def test_amx_is_never_compiled_even_where_the_cpu_advertises_it(tmp_path: Path) -> None:
    flags = _flags(tmp_path, SAPPHIRE_RAPIDS)
    assert flags["GGML_NATIVE"] == "OFF" and flags["GGML_CPU_ALL_VARIANTS"] == "OFF"
    assert flags["GGML_AMX_TILE"] == flags["GGML_AMX_INT8"] == flags["GGML_AMX_BF16"] == "OFF"
    assert flags["GGML_AVX512"] == flags["GGML_AVX512_VNNI"] == flags["GGML_AVX2"] == "ON"


def test_instruction_sets_follow_cpuinfo(tmp_path: Path) -> None:
    avx2_only = _flags(tmp_path, "fpu sse2 avx avx2 fma f16c bmi2")
    assert avx2_only["GGML_AVX2"] == "ON" and avx2_only["GGML_AVX512"] == "OFF" and avx2_only["GGML_AVX_VNNI"] == "OFF"
    # AVX-512 needs all five of F, CD, VL, DQ and BW (ggml compiles with all of them); its extensions need it
    partial = _flags(tmp_path, "avx avx2 fma f16c avx512f avx512cd avx512_vnni")
    assert partial["GGML_AVX512"] == "OFF" and partial["GGML_AVX512_VNNI"] == "OFF"
    old = _flags(tmp_path, "fpu sse2 avx")
    assert old["GGML_AVX"] == "ON" and old["GGML_AVX2"] == old["GGML_FMA"] == "OFF"
    baseline = _flags(tmp_path, SAPPHIRE_RAPIDS, COOPBOT_LLAMA_ISA="baseline")
    assert baseline["GGML_AVX2"] == "ON" and baseline["GGML_AVX512"] == "OFF"
    arm = _flags(tmp_path, "fp asimd", COOPBOT_ARCH="aarch64")
    assert arm["GGML_NATIVE"] == "OFF" and "GGML_AVX2" not in arm


def _library() -> Path:
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None and spec.submodule_search_locations, "llama-cpp-python is not installed (scripts/setup.sh)"
    found = sorted((Path(next(iter(spec.submodule_search_locations))) / "lib").glob("libggml-cpu.so*"))
    assert found, "libggml-cpu.so not found in llama_cpp/lib"
    return found[0]


def test_installed_library_holds_no_amx_instruction() -> None:
    objdump = shutil.which("objdump")
    assert objdump is not None, "objdump is missing: apt-get install binutils"
    code = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(_library())], capture_output=True, text=True)
    assert code.returncode == 0 and len(code.stdout) > 100_000
    assert not AMX_INSTRUCTIONS.search(code.stdout)


def test_installed_library_was_built_portably_for_what_this_cpu_has() -> None:
    stamp = _library().parent / "coopbot-build.txt"
    assert stamp.is_file(), "llama-cpp-python was not installed by scripts/build-llama.sh"
    flags = dict(re.findall(r"-D(\w+)=(\S+)", stamp.read_text(encoding="utf-8")))
    assert flags["GGML_NATIVE"] == "OFF" and flags["GGML_AMX_INT8"] == "OFF"
    cpu = set(Path("/proc/cpuinfo").read_text(encoding="utf-8").split())
    needs = {"GGML_AVX2": "avx2", "GGML_FMA": "fma", "GGML_AVX512": "avx512bw", "GGML_AVX512_VNNI": "avx512_vnni"}
    for flag, feature in needs.items():
        if flags.get(flag) == "ON":
            assert feature in cpu, f"built with {flag} but this CPU lacks {feature}: run scripts/setup.sh to rebuild"
