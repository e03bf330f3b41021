"""``modules.sd_hijack``: the textual-inversion database and what the last prompt encoding noted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from modules import shared

EMBEDDING_SUFFIXES = {".pt", ".bin", ".safetensors"}


class Embedding:
    def __init__(self, name: str, filename: str) -> None:
        self.name = name
        self.filename = filename
        self.shorthash = hashlib.sha256(Path(filename).read_bytes()).hexdigest()[:12]


class EmbeddingDatabase:
    """Embeddings by the word that calls them in a prompt: the file's stem."""

    def __init__(self) -> None:
        self.word_embeddings: dict[str, Embedding] = {}

    def load_textual_inversion_embeddings(self) -> None:
        folder = Path(shared.cmd_opts.embeddings_dir)
        self.word_embeddings.clear()
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.suffix in EMBEDDING_SUFFIXES:
                self.word_embeddings[path.stem] = Embedding(path.stem, os.path.abspath(path))


class StableDiffusionModelHijack:
    def __init__(self) -> None:
        self.embedding_db = EmbeddingDatabase()
        #: What encoding the prompts added to the infotext: "TI hashes" when embeddings were used.
        self.extra_generation_params: dict[str, Any] = {}

    def note_prompts(self, prompts: list[str]) -> None:
        """What encoding ``prompts`` notes, as A1111's CLIP hijack does: the embeddings used, with hashes."""
        self.extra_generation_params.clear()
        used = [e for word, e in self.embedding_db.word_embeddings.items() if any(word in p.split() for p in prompts)]
        if used:
            self.extra_generation_params["TI hashes"] = ", ".join(f"{e.name}: {e.shorthash}" for e in used)


model_hijack = StableDiffusionModelHijack()
