"""Typed configurations, the paper's Table 1 per dataset, and its variants as configurations."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace

# Every model: the name the flags take, and the name the paper's tables print.
MODEL_TITLES = {"mikgnn": "MI-KGNN", "kgcn": "KGCN", "kgcn-ls": "KGCN-LS", "mf": "MF", "svd": "SVD", "fm": "LibFM",
                "fm-transe": "LibFM + TransE", "per": "PER", "cke": "CKE", "ripplenet": "RippleNet", "kgat": "KGAT",
                "ckan": "CKAN", "kgin": "KGIN", "agcn": "AGCN", "lightgcn": "LightGCN"}
MODELS = tuple(MODEL_TITLES)
LOSSES = ("bce", "bpr")
DEVICES = ("auto", "cpu", "cuda")
ATTENTIONS = ("dual", "uniform", "relation")
AGGREGATORS = ("interaction", "sum", "concat", "neighbor")
LOGITS = ("dot", "mean")
NEIGHBOUR_VECTORS = ("sum", "mean")
L2_MODES = ("full", "batch", "w1w2")
PROTOCOLS = ("full", "sampled")
TRANSFORMS = ("identity", "learned")
PLACEMENTS = ("PACK", "SPREAD")
SEARCHERS = ("optuna", "random")
SCHEDULERS = ("asha", "fifo")
# Largest full receptive field n^h a search trains as it is; a larger one is trained with the
# receptive-field adjustment (FMK r: n entities per hop). 64 keeps every h <= 2 point of the
# shipped spaces exact on CPUs; an h = 3 or 4 epoch at the full field takes minutes on 2 cores
# (docs/benchmarks.md), so raise it on GPUs.
MAX_FIELD = 64
# Sane bounds of the resource-sized keys: a setting beyond them asks for more memory or threads
# than any run here needs, and would starve the machine before failing.
MAX_DIM, MAX_NEIGHBOURS, MAX_HOPS, MAX_BATCH = 4096, 1024, 8, 1 << 20
SEARCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
FIELD_MODELS = ("mikgnn", "kgcn", "kgcn-ls")  # a receptive field of n^h entities, whose neighbours attend
FIELD_MEMORY_SHARE = 0.5  # of the machine's memory, that one step's receptive field may take


@dataclass(frozen=True)
class ModelConfig:
    """One propagation model; MI-KGNN, its variants and KGCN are settings of it (SPEC §3).

    attention: dual (Eq. 21), uniform (w/o att.), relation (KGCN: softmax_j(u · r_j)).
    aggregator: interaction (Eq. 16), or KGCN's sum / concat / neighbor.
    pruned: FMK a, φ = identity (Eq. 25). adjusted_field: FMK r. layer_by_layer: FMK l.
    transform: Eq. 16's W1, W2 and b trained ("learned", the paper and KGCN's code), or fixed
    to W1 = W2 = I, b = 0 ("identity": no feature transformation). MI-KGNN defaults to
    identity, chosen by measurement (docs/model.md); the KGCN baselines keep KGCN's learned one.
    """

    model: str = "mikgnn"
    dim: int = 16
    n_neighbours: int = 8
    hops: int = 1
    theta: float = 0.9
    attention: str = "dual"
    aggregator: str = "interaction"
    pruned: bool = False
    adjusted_field: bool = False
    layer_by_layer: bool = False
    logits: str = "mean"
    neighbour_vector: str = "mean"
    init_std: float | None = None  # None: Xavier-uniform tables; else normal(0, init_std)
    logit_scale: float = 1.0  # multiplies the attention logits (a fixed inverse temperature)
    transform: str = "identity"
    # The baselines' own settings (mikgnn/baselines/; each model's defaults: MODEL_DEFAULTS)
    memory: int = 32  # triples per hop of a user's set (RippleNet's ripple set, CKAN's user set)
    item_memory: int = 64  # triples per hop of an item's set (CKAN)
    kg_weight: float = 1.0  # weight of a model's own extra loss (KG embedding, intent independence, attributes)
    intents: int = 4  # KGIN's user intents
    dropout: float = 0.0  # message dropout of the propagation models (KGAT, KGIN)
    meta_paths: int = 4  # PER: the relations (by item coverage) whose meta-paths it uses
    attributes: int = 4096  # AGCN: the most frequent item-linked entities kept as attributes

    def __post_init__(self) -> None:
        _one_of("model", self.model, MODELS)
        _one_of("attention", self.attention, ATTENTIONS)
        _one_of("aggregator", self.aggregator, AGGREGATORS)
        _one_of("logits", self.logits, LOGITS)
        _one_of("neighbour_vector", self.neighbour_vector, NEIGHBOUR_VECTORS)
        _one_of("transform", self.transform, TRANSFORMS)
        if self.transform == "identity" and self.aggregator == "concat":
            raise ValueError("the concat aggregator maps 2d to d features and has no identity transform: "
                             "use transform 'learned' with it")
        if not -1.0 <= self.theta <= 1.0:
            raise ValueError(f"theta must lie in [-1, 1], got {self.theta}")
        if self.n_neighbours < 1:
            raise ValueError(f"n (neighbours per entity) must be >= 1, got {self.n_neighbours}")
        if self.hops < 1:
            raise ValueError(f"h (hops) must be >= 1, got {self.hops}")
        if self.init_std is not None and self.init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")
        if self.logit_scale <= 0:
            raise ValueError(f"logit_scale must be > 0, got {self.logit_scale}")
        if not 1 <= self.dim <= MAX_DIM:
            raise ValueError(f"d (embedding dim) must lie in [1, {MAX_DIM}], got {self.dim}")
        if self.n_neighbours > MAX_NEIGHBOURS or self.hops > MAX_HOPS:
            raise ValueError(f"n <= {MAX_NEIGHBOURS} and h <= {MAX_HOPS} required (a receptive field of n^h "
                             f"entities per item), got n = {self.n_neighbours}, h = {self.hops}")
        for name in ("memory", "item_memory", "intents", "meta_paths", "attributes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kg_weight < 0:
            raise ValueError(f"kg_weight must be >= 0, got {self.kg_weight}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 5e-4
    batch_size: int = 128
    l2: float = 9.1e-5
    l2_mode: str = "full"
    l2_relations: bool = True
    ls_weight: float = 0.0
    epochs: int = 100  # a budget: early stopping ends a run once it has converged
    patience: int = 5
    # converged: patience epochs without beating the best validation metric by more than this
    # (a run that creeps up by 1e-5 an epoch is not worth 100 more; docs/benchmarks.md)
    min_delta: float = 5e-4
    select_metric: str = "auc"
    seed: int = 0
    protocol: str = "full"
    eval_users: int = 100
    ks: tuple[int, ...] = (2, 10, 20, 50, 100)
    threads: int = 0  # torch threads of a one-process run (0: torch's choice); Ray workers size their own
    loss: str = "bce"  # bce: BCE on SPEC §2's fixed labelled rows; bpr: BPR, one sampled negative per positive
    device: str = "auto"  # a one-process run's device (auto: cuda when there is one); Ray workers take theirs
    # Validation's top-K metrics (full ranking: most of an epoch for a large receptive field) every
    # k-th epoch; 0: only the best epoch's, once training ends. Selecting on auc or f1 needs none.
    topk_every: int = 1

    @property
    def l2_in_optimizer(self) -> bool:
        """Whether the L2 term is Adam's weight decay (``training.make_optimizer``), not in the loss."""
        return self.l2 > 0 and self.l2_mode == "full"

    def __post_init__(self) -> None:
        _one_of("l2_mode", self.l2_mode, L2_MODES)
        _one_of("loss", self.loss, LOSSES)
        _one_of("device", self.device, DEVICES)
        if not 0 <= self.threads <= (os.cpu_count() or 1):
            raise ValueError(f"threads must lie in [0, {os.cpu_count() or 1}] (0: torch's choice; this machine has "
                             f"{os.cpu_count() or 1} CPUs), got {self.threads}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must lie in [1, {MAX_BATCH}], got {self.batch_size}")
        if self.eval_users < 1:
            raise ValueError(f"eval_users must be >= 1 (top-K over no user has no value), got {self.eval_users}")
        if not self.ks or any(not isinstance(k, int) or k < 1 for k in self.ks):
            raise ValueError(f"ks must be a non-empty list of integers >= 1 (the K of Recall@K), got {list(self.ks)}")
        _one_of("protocol", self.protocol, PROTOCOLS)
        if not 0 <= self.min_delta < 1:
            raise ValueError(f"min_delta must lie in [0, 1) (a gain of the validation metric), got {self.min_delta}")
        if self.lr <= 0 or self.batch_size < 1 or self.epochs < 1 or self.patience < 1:
            raise ValueError(f"lr > 0, batch_size >= 1, epochs >= 1, patience >= 1 required: {self}")
        selectable = ("auc", "f1", *(f"{m}@{k}" for m in ("recall", "ndcg") for k in self.ks))
        _one_of("select_metric", self.select_metric, selectable)
        if self.topk_every < 0:
            raise ValueError(f"topk_every must be >= 0 (0: the best epoch's only), got {self.topk_every}")
        if self.topk_every != 1 and self.select_metric not in ("auc", "f1"):
            raise ValueError(f"select_metric {self.select_metric!r} is a top-K metric, read every epoch: it needs "
                             f"topk_every 1, not {self.topk_every}")
        if self.l2 < 0 or self.ls_weight < 0:
            raise ValueError(f"l2 and ls_weight must be >= 0: {self.l2}, {self.ls_weight}")
        if self.loss == "bpr" and self.ls_weight > 0:
            raise ValueError(f"label smoothness (ls_weight {self.ls_weight}) propagates the labelled rows' labels "
                             "and goes with loss 'bce', not 'bpr'")


@dataclass(frozen=True)
class ParallelConfig:
    """How W data-parallel workers share the training (``mikgnn.distributed``).

    sync_every = 1 (default): DistributedDataParallel averages the gradients in every backward
    pass, so every step is one synchronous step on a global batch of ``batch_size`` split W
    ways (drawn from the workers' own shards, so not one process's batches). sync_every = K > 1:
    local SGD (torch's ``PostLocalSGDOptimizer``), each worker steps on its own gradients and
    the parameters are averaged every K steps and at the end of every epoch (Adam's moments
    stay per worker).
    batch_per_worker: every worker steps on ``batch_size`` rows (a global batch of W × batch)
    instead of ``batch_size / W``.
    cpus_per_worker, placement_strategy (PACK: on few nodes; SPREAD: over nodes) and
    max_failures (worker-group restarts from the last checkpoint) size and place the group.
    """

    sync_every: int = 1
    batch_per_worker: bool = False
    cpus_per_worker: float = 1.0
    placement_strategy: str = "PACK"
    max_failures: int = 3

    def __post_init__(self) -> None:
        if self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")
        if not self.cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        _one_of("placement_strategy", self.placement_strategy, PLACEMENTS)
        if self.max_failures < 0:
            raise ValueError(f"max_failures must be >= 0, got {self.max_failures}")

    def worker_batch(self, batch_size: int, workers: int) -> int:
        return batch_size if self.batch_per_worker else max(1, batch_size // workers)

    def summary(self, workers: int, batch_size: int, gpu: bool) -> str:
        """One line that says how ``workers`` share the training, for the console."""
        if workers == 1:
            return f"one Ray Train worker, no data parallelism; batch {batch_size}"
        backend = "NCCL" if gpu else "gloo"
        how = (f"DDP over {backend}, gradients averaged every step" if self.sync_every == 1 else
               f"local SGD over {backend}, parameters averaged every {self.sync_every} steps")
        per = self.worker_batch(batch_size, workers)
        return f"data parallel: {workers} workers, {how}; {per} rows a worker a step (global batch {per * workers})"


@dataclass(frozen=True)
class SearchConfig:
    """How ``pipelines/tune.py`` searches (``mikgnn.distributed.tuner``).

    search: Optuna TPE or random sampling. scheduler: ASHA stops weak trials at rungs; fifo
    runs every trial to its end. max_concurrent: a cap on concurrent trials (None: what the
    cluster fits). max_field: see ``MAX_FIELD``. stall_timeout: seconds without a report after
    which the watchdog stops a trial or the search (0: 10x the longest wait between two epochs
    so far, at least 600 s). experiment: the MLflow experiment ("": the dataset's name).
    name: the search's name under the storage path ("": <dataset>-<time>). diagnostics: a
    trial's MLflow run logs every metric it reports (the attention's entropy and spread, the
    embedding norms, timings, each K's validation curve), not only the ones compared
    (``tracking.compared``).
    """

    search: str = "optuna"
    scheduler: str = "asha"
    max_concurrent: int | None = None
    max_field: int = MAX_FIELD
    stall_timeout: float = 0.0
    experiment: str = ""
    name: str = ""
    diagnostics: bool = False

    def __post_init__(self) -> None:
        _one_of("search", self.search, SEARCHERS)
        _one_of("scheduler", self.scheduler, SCHEDULERS)
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.max_field < 1:
            raise ValueError(f"max_field must be >= 1, got {self.max_field}")
        if self.name and (not SEARCH_NAME.fullmatch(self.name) or len(self.name) > 200):
            raise ValueError(f"name {self.name!r}: a search's name is a folder under the storage path, letters, "
                             "digits, '.', '_' and '-' (no '/' or '..'), at most 200 characters")
        if not self.stall_timeout >= 0:
            raise ValueError(f"stall_timeout must be >= 0 seconds (0: derived from the epoch times), "
                             f"got {self.stall_timeout}")


@dataclass(frozen=True)
class Table1:
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)


# The paper's Table 1; movie1m stands in for movie and takes its settings.
_TABLE1 = {
    "movie": dict(hops=1, dim=32, n_neighbours=16, theta=0.9, l2=1e-7, lr=2e-3, batch_size=1024, ls=1.0),
    "music": dict(hops=1, dim=16, n_neighbours=8, theta=0.9, l2=9.1e-5, lr=5e-4, batch_size=128, ls=0.1),
    "restaurant": dict(hops=1, dim=16, n_neighbours=8, theta=-0.35, l2=9.8e-8, lr=2e-3, batch_size=1024,
                       ls=0.5),
}
_TABLE1["movie1m"] = _TABLE1["movie"]


TABLE1_MODEL_KEYS = ("dim", "n_neighbours", "hops", "theta")  # the ModelConfig fields Table 1 sets
TABLE1_TRAIN_KEYS = ("lr", "batch_size", "l2")  # and the TrainConfig ones


def table1(dataset: str) -> Table1:
    """Table 1's hyperparameters for ``dataset`` (music's for a custom dataset)."""
    t = _TABLE1.get(dataset, _TABLE1["music"])
    return Table1(ModelConfig(**{k: t[k] for k in TABLE1_MODEL_KEYS}),
                  TrainConfig(**{k: t[k] for k in TABLE1_TRAIN_KEYS}))


def table1_ls_weight(dataset: str) -> float:
    """Table 1's β (label smoothness weight) for ``dataset``."""
    return _TABLE1.get(dataset, _TABLE1["music"])["ls"]


# Tables 5-7: every variant is a set of overrides of the one model.
VARIANTS: dict[str, dict] = {
    "mi-kgnn": {},
    "w/o-neig-att": dict(theta=1.0),
    "w/o-user-att": dict(theta=0.0),
    "w/o-att": dict(attention="uniform"),
    "fmk": dict(adjusted_field=True, pruned=True, layer_by_layer=True),
    "w-r": dict(adjusted_field=True),
    "w-a": dict(pruned=True),
    "w-l": dict(layer_by_layer=True),
    "w/o-r": dict(pruned=True, layer_by_layer=True),
    "w/o-a": dict(adjusted_field=True, layer_by_layer=True),
    "w/o-l": dict(adjusted_field=True, pruned=True),
}
# KGCN (and KGCN-LS): relation attention with its own aggregators.
KGCN_AGGREGATORS = ("sum", "concat", "neighbor")


def apply_variant(model: ModelConfig, variant: str) -> ModelConfig:
    _one_of("variant", variant, tuple(VARIANTS))
    return replace(model, **VARIANTS[variant])


# Each baseline's defaults from its own paper or released code (docs/baselines.md), over the
# dataset's Table 1: (ModelConfig keys, TrainConfig keys). A model not listed keeps Table 1 (the
# KGCN line tuned SVD, LibFM, LibFM + TransE and PER on these datasets with Table 1-like grids).
# Their codes' L2 is the mean over a batch of the rows it used; ours (l2_mode batch) is the sum,
# so λ here is theirs / their batch size.
MODEL_DEFAULTS: dict[str, tuple[dict, dict]] = {
    "cke": ({"kg_weight": 1.0}, {"loss": "bpr"}),
    "ripplenet": (dict(dim=16, hops=2, memory=32, kg_weight=0.01),
                  dict(lr=0.02, batch_size=1024, l2=1e-7)),
    "kgat": (dict(dim=64, hops=3, kg_weight=1.0, dropout=0.1),
             dict(loss="bpr", lr=1e-4, batch_size=1024, l2=1e-5 / 1024, l2_mode="batch")),
    "ckan": (dict(dim=64, hops=3, memory=8, item_memory=64), dict(lr=2e-3, batch_size=2048, l2=1e-5)),
    "kgin": (dict(dim=64, hops=3, intents=4, kg_weight=1e-4, dropout=0.1),
             dict(loss="bpr", lr=1e-4, batch_size=1024, l2=1e-5 / 1024, l2_mode="batch")),
    "agcn": (dict(dim=64, hops=2, kg_weight=1.0), dict(loss="bpr", lr=1e-3, batch_size=1024, l2=1e-5 / 1024,
                                                      l2_mode="batch")),
    "lightgcn": (dict(dim=64, hops=3), dict(loss="bpr", lr=1e-3, batch_size=2048, l2=1e-4 / 2048, l2_mode="batch")),
}


def for_model(model: ModelConfig, name: str, kgcn_aggregator: str = "sum") -> ModelConfig:
    """The settings that make ``name`` out of the shared model; the KGCN baselines train
    their aggregator's weights, as KGCN's code does; the others take MODEL_DEFAULTS."""
    _one_of("model", name, MODELS)
    if name in ("kgcn", "kgcn-ls"):
        _one_of("kgcn aggregator", kgcn_aggregator, KGCN_AGGREGATORS)
        return replace(model, model=name, attention="relation", aggregator=kgcn_aggregator, transform="learned")
    return replace(model, model=name, **MODEL_DEFAULTS.get(name, ({}, {}))[0])


def train_for_model(train: TrainConfig, name: str) -> TrainConfig:
    """``train`` with the training defaults of model ``name`` (MODEL_DEFAULTS)."""
    return replace(train, **MODEL_DEFAULTS.get(name, ({}, {}))[1])


def as_dict(config) -> dict:
    return asdict(config)


def _one_of(what: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}: choose one of {list(allowed)}")


def check_field_memory(model: ModelConfig, train: TrainConfig) -> None:
    """Refuse a receptive field whose one training step would take more than half of this
    machine's memory, before anything is allocated: batch x (1 + n + ... + n^h) entities (FMK r:
    1 + n h) x d floats, about 4 times over (embeddings, messages, their gradients)."""
    if model.model not in FIELD_MODELS:
        return
    n, h = model.n_neighbours, model.hops
    entities = 1 + n * h if model.adjusted_field else sum(n ** i for i in range(h + 1))
    need = train.batch_size * entities * model.dim * 4 * 4
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: nothing to compare with
        return
    if need > FIELD_MEMORY_SHARE * total:
        raise ValueError(f"the receptive field of n = {n}, h = {h} ({entities:,} entities per item) at batch_size "
                         f"{train.batch_size} and d {model.dim} needs about {need / 2**30:,.0f} GiB a training step, "
                         f"more than half of this machine's {total / 2**30:.0f} GiB: lower n, h, batch_size or d, "
                         "or set adjusted_field=true (FMK r: n entities per hop)")
