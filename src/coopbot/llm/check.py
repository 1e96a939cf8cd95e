"""Does the local model run on this machine, with this build? Asked once by a real generation in a child.

A llama.cpp build that ran on one CPU can crash on another (see `process`), so `coopbot model
prepare --llm` ends by starting the model process exactly as the app does and asking it for one
sentence. The verdict is stamped next to the model, keyed by the library build, the model file and
this CPU's instruction sets; `auto` uses the model only with a passing stamp for all three.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from coopbot.config import Settings
from coopbot.llm.base import GenerationError

_STAMP_SUFFIX = ".runs-here.json"
PROBE_QUESTION = "用一句话介绍你自己。"


@dataclass(frozen=True)
class RunCheck:
    """The verdict of one check: ok, what the model said or what failed, and the key it holds for."""

    ok: bool
    message: str
    seconds: float
    key: str


def cpu_flags() -> str:
    """This CPU's instruction-set flags (Linux), the part of the machine a native library depends on."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return ""


def library_build() -> str:
    """The installed llama-cpp-python: version, the portable build's stamp and its libraries' sizes and dates."""
    spec = find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return "missing"
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    try:
        version = metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        version = "unknown"
    parts = [version]
    stamp = lib / "coopbot-build.txt"
    parts.append(stamp.read_text(encoding="utf-8").splitlines()[0] if stamp.is_file() else "no-stamp")
    for so in sorted(lib.glob("*.so*")):
        stat = so.stat()
        parts.append(f"{so.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return " ".join(parts)


def check_key(model_path: Path) -> str:
    """What a verdict holds for: the library build, the model file (path, size, date) and the CPU flags."""
    try:
        stat = model_path.stat()
        model = f"{model_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        model = f"{model_path}:missing"
    return hashlib.sha256("\n".join([library_build(), model, cpu_flags()]).encode()).hexdigest()[:24]


def _stamp(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + _STAMP_SUFFIX)


def runs_here(model_path: Path) -> bool | None:
    """The stamped verdict for this build, model and CPU: True, False, or None when never checked."""
    try:
        data = json.loads(_stamp(model_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != check_key(model_path):
        return None
    return bool(data.get("ok"))


def check_model_runs(model_path: Path, settings: Settings) -> RunCheck:
    """Start the model process as the app does, ask for one sentence, stop it; stamp and return the verdict."""
    from coopbot.llm.local import LocalModelGenerator, model_server

    began = time.monotonic()
    key = check_key(model_path)
    server = model_server(model_path, settings, max_failed_starts=1)
    generator = LocalModelGenerator(model_path, settings, server)
    try:
        messages = [{"role": "user", "content": PROBE_QUESTION}]
        text = "".join(generator.stream(messages, max_tokens=24, timeout_s=settings.llm.start_timeout_s)).strip()
        result = RunCheck(bool(text), text or "模型没有输出任何内容。", round(time.monotonic() - began, 1), key)
    except GenerationError as exc:
        deadline = time.monotonic() + 5  # a crash mid-answer: let the monitor see the exit and say how it ended
        while server.status().state == "ready" and time.monotonic() < deadline:
            time.sleep(0.1)
        detail = server.last_error or str(exc)
        result = RunCheck(False, detail, round(time.monotonic() - began, 1), key)
    finally:
        generator.close()
    stamp = {**asdict(result), "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _stamp(model_path).write_text(json.dumps(stamp, ensure_ascii=False, indent=1), encoding="utf-8")
    return result
