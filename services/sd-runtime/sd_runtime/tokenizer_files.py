"""CLIP tokenizer folders built offline: CLIP's own BPE, or a byte-level one for small test models.

A Stable Diffusion 1.x checkpoint holds the text encoder's weights but not
its tokenizer, and the runtime never downloads one. CLIP's byte-pair merges
(``bpe_simple_vocab_16e6.txt.gz``) ship inside the ``open-clip-torch``
wheel, which ``make install`` installs without its dependencies (its import
needs torchvision, so it is never imported: the file is found through the
package's import spec). From it the vocabulary is built exactly as CLIP's
own tokenizer builds it:

- the 256 byte symbols of GPT-2/CLIP's reversible byte-to-unicode map,
- the same 256 symbols with ``</w>`` (end of word),
- one token per merge, for the first 48894 merges of the file,
- ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407),

49408 tokens in all. ``vocab.json`` and ``merges.txt`` in the Hugging Face
layout are written once under the runtime's cache folder and loaded with
transformers' ``CLIPTokenizer``.

Models whose text encoder has another vocabulary size (the tests' tiny
models) get a byte-level tokenizer of that size instead: the 512 byte
symbols, no merges (every word spelled out byte by byte), unused padding
tokens, and the two special tokens last.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import tempfile
from pathlib import Path

#: Size of CLIP's vocabulary (SD 1.x's text encoder's token embedding rows).
CLIP_VOCAB_SIZE = 49408
#: How many merges of the BPE file CLIP uses: its vocabulary less the 512 byte symbols and 2 special tokens.
CLIP_MERGES = CLIP_VOCAB_SIZE - 512 - 2
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
#: The smallest byte-level vocabulary: every byte, every byte ending a word, and the two special tokens.
BYTE_LEVEL_MIN_VOCAB = 512 + 2
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


class TokenizerUnavailable(RuntimeError):
    """CLIP's BPE file is not installed (the open-clip-torch wheel)."""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, [chr(c) for c in chars], strict=True))


def _byte_symbols() -> list[str]:
    symbols = list(bytes_to_unicode().values())
    return symbols + [s + "</w>" for s in symbols]


def _write_config(path: Path, max_length: int) -> None:
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {"tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "do_lower_case": True, **specials}
        )
    )
    (path / "special_tokens_map.json").write_text(json.dumps(specials))


def _padded(tokens: list[str], vocab_size: int | None) -> list[str]:
    """``tokens``, unused padding tokens up to ``vocab_size`` less two, then the two special tokens."""
    if vocab_size is not None:
        if vocab_size < len(tokens) + 2:
            raise ValueError(f"a vocabulary of {vocab_size} tokens is too small: at least {len(tokens) + 2} are needed")
        tokens = tokens + [f"<|unused_{i}|>" for i in range(vocab_size - len(tokens) - 2)]
    return [*tokens, BOS, EOS]


def write_byte_level_tokenizer(path: Path, vocab_size: int | None = None, max_length: int = 77) -> Path:
    """A CLIPTokenizer folder: every byte as a token and as a word end, no merges, and CLIP's two special tokens.

    With no merges, every word is spelled out byte by byte; that is enough to
    tokenize any prompt. ``vocab_size`` pads the vocabulary with unused
    tokens before the special tokens (which stay the last two ids).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokens = _padded(_byte_symbols(), vocab_size)
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (path / "merges.txt").write_text("#version: 0.2\n")
    _write_config(path, max_length)
    return path


def clip_bpe_file() -> Path:
    """CLIP's BPE merges as the open-clip-torch wheel ships them (the package is located, never imported)."""
    spec = importlib.util.find_spec("open_clip")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / BPE_FILE
        if candidate.is_file():
            return candidate
    raise TokenizerUnavailable(
        f"CLIP's tokenizer merges ({BPE_FILE}) are not installed: they come from the open-clip-torch package, "
        "which `make install` installs with --no-deps (pip install --no-deps open-clip-torch==3.3.0)"
    )


def clip_vocabulary(bpe_file: Path) -> tuple[list[str], list[str]]:
    """CLIP's 49408 tokens in id order, and its merges as ``"a b"`` lines, from the BPE file."""
    with gzip.open(bpe_file) as packed:
        lines = packed.read().decode("utf-8").split("\n")
    merges = lines[1 : 1 + CLIP_MERGES]  # the first line is the file's header
    if len(merges) != CLIP_MERGES or any(len(line.split()) != 2 for line in merges):
        raise TokenizerUnavailable(f"{bpe_file} does not hold CLIP's {CLIP_MERGES} merges")
    tokens = _byte_symbols() + ["".join(line.split()) for line in merges] + [BOS, EOS]
    return tokens, merges


def clip_tokenizer_files(cache_dir: Path) -> Path:
    """A folder with CLIP's ``vocab.json`` and ``merges.txt``, built once under ``cache_dir``."""
    folder = Path(cache_dir) / "tokenizers" / "clip-bpe-49408"
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return folder
    tokens, merges = clip_vocabulary(clip_bpe_file())
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n"),
        ("vocab.json", json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False)),
    ):
        # Written beside and renamed, so a concurrent reader never sees half a file (vocab.json last: it marks done).
        handle, scratch = tempfile.mkstemp(dir=folder, prefix=name, suffix=".part")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(scratch, 0o644)
        os.replace(scratch, folder / name)
    return folder


def write_clip_tokenizer(path: Path, cache_dir: Path, vocab_size: int = CLIP_VOCAB_SIZE, max_length: int = 77) -> Path:
    """A CLIPTokenizer folder with CLIP's BPE (SD 1.x's tokenizer).

    A text encoder with more than 49408 embedding rows (tokens appended to
    CLIP's) gets unused tokens for the rows past 49407, so the tokenizer's
    length matches the embedding table; CLIP's own ids do not move.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    source = clip_tokenizer_files(cache_dir)
    (path / "merges.txt").write_bytes((source / "merges.txt").read_bytes())
    if vocab_size == CLIP_VOCAB_SIZE:
        (path / "vocab.json").write_bytes((source / "vocab.json").read_bytes())
    else:
        if vocab_size < CLIP_VOCAB_SIZE:
            raise ValueError(f"CLIP's tokenizer has {CLIP_VOCAB_SIZE} tokens; the text encoder has only {vocab_size}")
        vocab: dict[str, int] = json.loads((source / "vocab.json").read_text(encoding="utf-8"))
        for i in range(vocab_size - CLIP_VOCAB_SIZE):
            vocab[f"<|unused_{i}|>"] = CLIP_VOCAB_SIZE + i
        (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    _write_config(path, max_length)
    return path


def load_clip_tokenizer(cache_dir: Path):
    """transformers' CLIPTokenizer with CLIP's vocabulary, built offline."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        return CLIPTokenizer.from_pretrained(write_clip_tokenizer(Path(scratch), cache_dir), local_files_only=True)
