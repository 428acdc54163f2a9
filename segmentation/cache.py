"""Embeddings cached on disk, keyed by the encoder's identity and the exact texts: re-clustering never re-encodes.

An entry is a directory named by the key. Texts are encoded in chunks of ``chunk_size`` (in their
original order); each finished chunk is written to a temporary file and renamed into place, so a process
killed mid-encoding leaves only complete chunks behind and the next run encodes just the missing ones.
When all chunks exist they are joined into ``embeddings.npy`` and ``meta.json`` is written last: an entry
without ``meta.json`` is never read as complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segmentation import atomic
from segmentation.encoders import texts_digest

log = logging.getLogger(__name__)

EMBEDDINGS, META, LAYOUT = "embeddings.npy", "meta.json", "layout.json"


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with tmp.open("wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fault_exit_after_chunks() -> int | None:
    value = os.environ.get("SEGMENTATION_FAULT_EXIT_AFTER_CHUNKS")
    return int(value) if value else None


class EmbeddingCache:
    """A directory of embedding entries. ``stats`` counts hits, chunks encoded and chunks reused."""

    def __init__(self, root: str | Path, chunk_size: int = 4096, progress: bool = True):
        if chunk_size < 1:
            raise ValueError(f"encoder.chunk_size must be positive, got {chunk_size}")
        self.root = Path(root)
        self.chunk_size = chunk_size
        self.progress = progress
        self.stats: Counter = Counter()

    @staticmethod
    def key(identity: dict, texts: Sequence[str]) -> str:
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
        digest.update(texts_digest(texts).encode())
        return digest.hexdigest()

    def entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def load(self, key: str) -> np.ndarray | None:
        """The complete embeddings of an entry (memory-mapped, read-only), or None."""
        entry = self.entry(key)
        meta_path = entry / META
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            embeddings = np.load(entry / EMBEDDINGS, mmap_mode="r")
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable cache entry %s (%s)", entry, err)
            return None
        if embeddings.shape != (meta["n"], meta["dim"]):
            log.warning("ignoring cache entry %s: shape %s, expected %s", entry, embeddings.shape, (meta["n"], meta["dim"]))
            return None
        return embeddings

    def get_or_encode(self, encoder, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` by ``encoder`` (fitted), from the cache when present, else encoded and stored."""
        from tqdm.auto import tqdm

        texts = list(texts)
        identity = encoder.identity()
        key = self.key(identity, texts)
        cached = self.load(key)
        if cached is not None:
            self.stats["hits"] += 1
            log.info("embeddings of %d texts read from cache %s", len(texts), self.entry(key))
            return cached
        self.stats["misses"] += 1
        entry = self.entry(key)
        entry.mkdir(parents=True, exist_ok=True)
        layout_path = entry / LAYOUT
        # A resumed entry keeps the chunking it was started with, whatever chunk_size is now.
        if layout_path.is_file():
            chunk_size = int(json.loads(layout_path.read_text())["chunk_size"])
        else:
            chunk_size = self.chunk_size
            atomic.write_text(layout_path, json.dumps({"chunk_size": chunk_size, "n": len(texts)}))
        n_chunks = max(1, -(-len(texts) // chunk_size))
        target = None
        tmp_path = entry / f".tmp-{os.getpid()}-{EMBEDDINGS}"
        for i in tqdm(range(n_chunks), desc="embedding chunks", unit="chunk",
                      disable=not self.progress or n_chunks == 1):
            lo, hi = i * chunk_size, min((i + 1) * chunk_size, len(texts))
            chunk_path = entry / f"chunk-{i:06d}.npy"
            vectors = None
            if chunk_path.is_file():
                try:
                    vectors = np.load(chunk_path)
                    if vectors.shape[0] != hi - lo:
                        raise ValueError(f"{vectors.shape[0]} rows, expected {hi - lo}")
                    self.stats["chunks_reused"] += 1
                except (OSError, ValueError) as err:
                    log.warning("re-encoding damaged cache chunk %s (%s)", chunk_path, err)
                    vectors = None
            if vectors is None:
                vectors = np.asarray(encoder.encode(texts[lo:hi]), dtype=np.float32)
                _atomic_save(chunk_path, vectors)
                self.stats["chunks_encoded"] += 1
                if self.stats["chunks_encoded"] == _fault_exit_after_chunks():
                    os._exit(137)  # fault injection (tests only): as abrupt as kill -9
            if target is None:
                # Written in place chunk by chunk, so a million rows never sit in memory twice.
                target = np.lib.format.open_memmap(tmp_path, mode="w+", dtype=np.float32,
                                                   shape=(len(texts), vectors.shape[1]))
            target[lo:hi] = vectors
        target.flush()
        dim = target.shape[1]
        del target
        os.replace(tmp_path, entry / EMBEDDINGS)
        meta = {"n": len(texts), "dim": dim, "chunk_size": chunk_size, "identity": identity}
        atomic.write_text(entry / META, json.dumps(meta, indent=1))
        for chunk in entry.glob("chunk-*.npy"):
            chunk.unlink()
        return self.load(key)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
