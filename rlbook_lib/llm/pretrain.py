r"""Pre-training by next-token prediction on the book's language.

Every step draws a fresh batch of sentences from the grammar
(:func:`rlbook_lib.llm.grammar.sample`) and takes an Adam step on the
cross-entropy of each next token, averaged over the predicted tokens of the batch:

.. math::

    \mathcal{L}(\theta) = -\frac{1}{\sum_i T_i} \sum_{i} \sum_{t=1}^{T_i}
        \log \pi_\theta(y^i_t \mid y^i_{<t}),

where T_i counts the words of sentence i and its EOS (BOS is given, PAD is not
predicted). Because no sentence is seen twice, the training loss of a batch is an
unbiased estimate of the held-out cross-entropy of the parameters before the step.
No model can go below the grammar's entropy rate
(:func:`rlbook_lib.llm.grammar.entropy_rate`); exp(𝓛) is the perplexity.

``make_train(config)`` returns ``train(key) -> Result``, one compiled
``lax.scan``. :func:`pretrain` adds an on-disk cache: the same config, key,
library version, JAX version and source of the language-model modules give the
same file, so later chapters reuse the model instead of training it again. The
cache lives in ``$RLBOOK_CACHE`` if set, else ``~/.cache/rlbook_lib``.

Example::

    result = pretrain.pretrain(pretrain.Config(), jax.random.key(0))
    model = pretrain.Config().model
    logits = model.apply(result.params, tokens)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import pathlib
import tempfile
from typing import Any, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

import rlbook_lib
from rlbook_lib import checks, networks
from rlbook_lib.llm import generation, grammar
from rlbook_lib.llm import transformer as transformer_lib
from rlbook_lib.llm.tokenizer import PAD

CACHE_ENV = "RLBOOK_CACHE"
"""Environment variable naming the cache directory."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Model size and training settings. The defaults came within 0.006 nats per token of the
    grammar's entropy rate in each of 8 seeds, in about half a minute on two CPU cores."""

    d_model: int = 64
    """d, width of the residual stream."""
    num_heads: int = 4
    """n_h, attention heads per layer."""
    num_layers: int = 2
    """Transformer blocks."""
    d_ff: int = 128
    """Hidden width of each block's MLP."""
    batch_size: int = 128
    """Sentences per step, each drawn fresh from the grammar."""
    num_steps: int = 1000
    """Adam steps."""
    learning_rate: float = 5e-3
    """Peak step size, reached after the warm-up and then decayed to 0 along a cosine."""
    warmup_steps: int = 100
    """Steps of linear warm-up from 0 to the peak step size."""
    max_grad_norm: float = 1.0
    """Gradients are rescaled to at most this global norm."""
    num_snapshots: int = 10
    """Parameters are kept after every num_steps / num_snapshots steps (and at step 0)."""

    def __post_init__(self):
        for name in ("d_model", "num_heads", "num_layers", "d_ff", "batch_size", "num_steps",
                     "num_snapshots"):
            checks.check_positive_int(name, getattr(self, name))
        checks.check_positive_int("warmup_steps + 1", self.warmup_steps + 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        if self.d_model % 2:
            raise ValueError(f"d_model must be even (sinusoidal positions), got {self.d_model}")
        if self.num_steps % self.num_snapshots:
            raise ValueError(f"num_steps={self.num_steps} must be a multiple of num_snapshots={self.num_snapshots}")
        checks.check_hyperparameters(step_size=self.learning_rate)

    @property
    def model(self) -> transformer_lib.Transformer:
        """The transformer these settings describe, over the grammar's vocabulary."""
        return transformer_lib.Transformer(
            vocab_size=grammar.TOKENIZER.vocab_size, context_length=grammar.CONTEXT_LENGTH,
            d_model=self.d_model, num_heads=self.num_heads, num_layers=self.num_layers, d_ff=self.d_ff)

    @property
    def snapshot_steps(self) -> np.ndarray:
        """Steps at which :attr:`Result.snapshots` were taken: 0, k, 2k, ..., num_steps."""
        return np.arange(self.num_snapshots + 1) * (self.num_steps // self.num_snapshots)


class Metrics(NamedTuple):
    loss: Float[Array, "S"]
    """Cross-entropy per predicted token (nats) of each step's fresh batch, before the step."""
    grad_norm: Float[Array, "S"]
    """Global gradient norm before clipping."""


class Result(NamedTuple):
    params: Any
    """θ after the last step."""
    metrics: Metrics
    """One entry per step."""
    snapshots: Any
    """θ at ``config.snapshot_steps``: the params pytree with a leading axis of num_snapshots + 1."""


def predicted_mask(tokens) -> jax.Array:
    """True at the positions a model predicts: every non-PAD token after BOS."""
    return (tokens != PAD) & (jnp.arange(tokens.shape[-1]) > 0)


def cross_entropy(model, params, tokens) -> Float[Array, ""]:
    """Mean −log π_θ(y_t | y_{<t}) over the predicted tokens of a batch ``[B, L]`` (nats)."""
    mask = predicted_mask(tokens)
    return -generation.token_log_probs(model, params, tokens, mask).sum() / mask.sum()


def make_train(config: Config):
    """``train(key) -> Result``: pre-training as one ``lax.scan`` of ``num_steps`` steps."""
    model = config.model
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup_steps,
                                                  config.num_steps)
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule))
    per_snapshot = config.num_steps // config.num_snapshots

    def step(carry, key):
        params, opt_state = carry
        tokens = grammar.sample(key, config.batch_size)
        loss, grads = jax.value_and_grad(lambda p: cross_entropy(model, p, tokens))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), Metrics(loss, networks.global_norm(grads))

    def chunk(carry, keys):
        carry, metrics = jax.lax.scan(step, carry, keys)
        return carry, (carry[0], metrics)

    def train(key: jax.Array) -> Result:
        init_key, data_key = jax.random.split(key)
        params = model.init(init_key, jnp.zeros((1, model.context_length), jnp.int32))
        keys = jax.random.split(data_key, config.num_steps).reshape(config.num_snapshots, per_snapshot)
        (params_end, _), (snaps, metrics) = jax.lax.scan(chunk, (params, optimizer.init(params)), keys)
        snapshots = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), params, snaps)
        metrics = jax.tree.map(lambda x: x.reshape(config.num_steps), metrics)
        return Result(params_end, metrics, snapshots)

    return train


@functools.lru_cache(maxsize=8)
def _compiled_train(config: Config):
    """``jax.jit(make_train(config))``, built once per config (jit caches by function)."""
    return jax.jit(make_train(config))


def cache_dir() -> pathlib.Path:
    """Where :func:`pretrain` keeps its results: ``$RLBOOK_CACHE`` or ``~/.cache/rlbook_lib``."""
    return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "rlbook_lib")


def cache_key(config: Config, key: jax.Array) -> str:
    """A hash of everything the result depends on: the config, the key, the library and JAX
    versions, and the source of the modules that define the language, model and training."""
    h = hashlib.sha256()
    h.update(repr(config).encode())
    h.update(np.asarray(jax.random.key_data(key)).tobytes())
    h.update(f"{rlbook_lib.__version__} {jax.__version__}".encode())
    for source in (grammar.__file__, transformer_lib.__file__, generation.__file__, __file__):
        h.update(pathlib.Path(source).read_bytes())
    return h.hexdigest()[:24]


@contextlib.contextmanager
def _exclusive(lock_path: pathlib.Path):
    """Hold an exclusive lock on ``lock_path`` (POSIX ``flock``; without ``fcntl``, no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent misses then each train, which is only slower
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pretrain(config: Config, key: jax.Array, use_cache: bool = True) -> Result:
    """Train (or load the cached result of) ``make_train(config)(key)``; deterministic in ``key``.

    Processes that miss the cache at the same time (chapters executed in parallel) train
    once: the first holds a lock while it trains, and the others then load its result.
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be a pretrain.Config, got {type(config).__name__}")
    train = _compiled_train(config)
    if not use_cache:
        return jax.block_until_ready(train(key))
    path = cache_dir() / f"pretrain-{cache_key(config, key)}.msgpack"

    def load() -> Result:
        restored = flax.serialization.from_bytes(jax.eval_shape(train, key), path.read_bytes())
        return jax.tree.map(jnp.asarray, restored)

    if path.exists():
        return load()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_suffix(".lock")):
        if path.exists():  # another process trained it while we waited
            return load()
        result = jax.block_until_ready(train(key))
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
            f.write(flax.serialization.to_bytes(jax.device_get(result)))
        os.replace(f.name, path)  # atomic: a reader never sees half a file
    return result
