"""The quality benchmark's peers, each tuned on the same validation as ours: popularity and
repeat baselines, implicit's ALS and BPR, EASE, the basket methods TIFU-KNN and UP-CF, and a
LightGBM lambdarank reranker. `peers` ranks every one for the scored users."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from training.data import Interactions
from training.metrics import K, evaluate
from training.tuning import SELECT_ON

DAY_MS: Final = 86_400_000
EASE_L2: Final = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)

if TYPE_CHECKING:
    pass


def _binary(log: Interactions, mask: npt.NDArray[np.bool_]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Who touched what (1s), and how often."""
    matrix = log.touched(mask)
    counts = matrix.copy()
    matrix.data[:] = 1.0
    return matrix, counts


def _rank(scores: npt.NDArray[np.floating], k: int = K) -> npt.NDArray[np.int64]:
    from training.recipes import top_k

    return top_k(scores.astype(np.float32), k)[0]


#: A peer's repeat policies: leave out what the user has touched (implicit's `recommend`
#: default, and EASE's usual evaluation), or allow it.
POLICIES: Final = {"seen items left out": True, "seen items allowed": False}


def peers(
    log: Interactions, users: npt.NDArray[np.int64], cut_ms: int, *, learned: bool = True
) -> tuple[dict[str, npt.NDArray[np.int64]], dict[str, str]]:
    """Each peer's top 25 for the scored users, trained on the same curated events.

    The peers are set up as a careful user of each would: implicit's ALS and BPR, and EASE,
    get their repeat policy (and EASE its lambda) chosen on a validation split inside the
    training period (its newest 10% of events), then refit on everything. `learned` False
    leaves out the learned peer, the slowest to fit (for tests of the others)."""
    everything = np.ones(len(log), dtype=bool)
    binary, counts = _binary(log, everything)
    recent = log.ts_ms >= cut_ms - 30 * DAY_MS
    pop30 = np.bincount(log.item[recent], minlength=log.n_items).astype(np.float64)
    ranked: dict[str, npt.NDArray[np.int64]] = {}
    detail: dict[str, str] = {"popularity, last 30 days": "seen items allowed"}
    ranked["popularity, last 30 days"] = _rank(np.tile(pop30, (len(users), 1)))
    own = counts[users].toarray()
    ranked["repeat then popularity"] = _rank(own * (pop30.max() + 1.0) + pop30[None, :])
    detail["repeat then popularity"] = "seen items first"
    validation = _validation(log)
    for name, (best, chosen) in _implicit(binary, users, validation).items():
        ranked[name], detail[name] = best, chosen
    for name, (best, chosen) in _basket_peers(log, binary, users, validation).items():
        ranked[name], detail[name] = best, chosen
    ease = _ease(log, users, validation)
    if ease is not None:
        name, best, chosen = ease
        ranked[name], detail[name] = best, chosen
    reranked = _reranker(log, users, cut_ms, validation) if learned else None
    if reranked is not None:
        best, chosen = reranked
        ranked[RERANKER], detail[RERANKER] = best, chosen
    return ranked, detail


RERANKER: Final = "LightGBM lambdarank reranker"


def _reranker(
    log: Interactions, users: npt.NDArray[np.int64], cut_ms: int, validation: Validation | None
) -> tuple[npt.NDArray[np.int64], str] | None:
    """The learned peer (`benchmarks/reranker.py`), its boosting rounds chosen on validation;
    None where no label window fits before the validation cut."""
    from benchmarks import reranker

    if validation is None:
        return None
    trial = reranker.fit(log, validation.cut_ms, max(reranker.ROUNDS))
    if trial is None:
        return None
    scores = {
        rounds: evaluate(
            reranker.rank(trial, log, validation.cut_ms, validation.users, K, rounds),
            validation.truth,
        )[SELECT_ON]
        for rounds in reranker.ROUNDS
    }
    rounds = max(scores, key=lambda n: scores[n])
    model = reranker.fit(log, cut_ms, rounds)
    if model is None:
        return None
    said = ", ".join(f"{n} rounds {v:.4f}" for n, v in scores.items())
    return (
        reranker.rank(model, log, cut_ms, users, K),
        f"{len(reranker.FEATURES)} features, {rounds} rounds: validation NDCG@10 {said}",
    )


@dataclass(frozen=True)
class Validation:
    """The newest 10% of the training events held out, to choose a peer's settings on."""

    train: sp.csr_matrix
    users: npt.NDArray[np.int64]
    truth: sp.csr_matrix
    #: The events trained on.
    mask: npt.NDArray[np.bool_]
    #: The moment the split was cut at.
    cut_ms: int


def _validation(log: Interactions) -> Validation | None:
    from training.data import global_split
    from training.errors import NotEnoughData

    try:
        split = global_split(log, holdout=0.1, max_users=5000)
    except NotEnoughData:
        return None
    train, _ = _binary(log, split.train)
    return Validation(
        train, split.test_users.astype(np.int64), split.truth, split.train, int(split.cut_ms or 0)
    )


def _ranked_blocks(
    blocks: ScoreBlocks,
    seen: sp.csr_matrix,
    n_rows: int,
) -> dict[bool, npt.NDArray[np.int64]]:
    """Top K under each repeat policy (seen items left out or not) of scores that come a
    block of rows at a time (rows in the order asked)."""
    best = {leave_out: np.full((n_rows, K), -1, dtype=np.int64) for leave_out in (False, True)}
    done = 0
    for rows, scores in blocks:
        top = _rank(scores)  # fewer than K columns on a catalog smaller than K
        best[False][done : done + len(rows), : top.shape[1]] = top
        scores[seen[rows].toarray() > 0] = -np.inf
        top = _rank(scores)
        best[True][done : done + len(rows), : top.shape[1]] = top
        done += len(rows)
    return best


ScoreBlocks = Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]
#: Each basket peer's grid, as its authors tune it (a small one: the benchmark has a budget).
TIFU_GRID: Final = [
    {"groups": 7, "within": within, "group": group, "neighbours": 300, "alpha": alpha}
    for within in (0.9, 1.0)
    for group in (0.7, 0.9)
    for alpha in (0.7, 0.9)
]
UPCF_GRID: Final = [
    {"recent": recent, "asymmetry": asymmetry, "locality": locality}
    for recent in (1, 5, 25)
    for asymmetry in (0.25, 0.75)
    for locality in (1.0, 5.0)
]


def _basket_peers(
    log: Interactions,
    seen: sp.csr_matrix,
    users: npt.NDArray[np.int64],
    validation: Validation | None,
) -> dict[str, tuple[npt.NDArray[np.int64], str]]:
    """TIFU-KNN and UP-CF@r, each with its setting and repeat policy chosen on validation
    (`seen`: who touched what, of all the events)."""
    from benchmarks.basket_peers import tifu_scores, tifu_vectors, upcf_scores

    everything = np.ones(len(log), dtype=bool)

    def tifu(
        mask: npt.NDArray[np.bool_], rows: npt.NDArray[np.int64], setting: dict[str, float]
    ) -> ScoreBlocks:
        vectors = tifu_vectors(
            log,
            mask,
            groups=int(setting["groups"]),
            within=setting["within"],
            group=setting["group"],
        )
        return tifu_scores(vectors, rows, neighbours=int(setting["neighbours"]),
                           alpha=setting["alpha"])  # fmt: skip

    def upcf(
        mask: npt.NDArray[np.bool_], rows: npt.NDArray[np.int64], setting: dict[str, float]
    ) -> ScoreBlocks:
        return upcf_scores(log, mask, rows, recent=int(setting["recent"]),
                           asymmetry=setting["asymmetry"],
                           locality=setting["locality"])  # fmt: skip

    found = {}
    for name, method, grid in (
        ("TIFU-KNN", tifu, TIFU_GRID),
        ("UP-CF@r", upcf, UPCF_GRID),
    ):
        setting, policy = grid[0], "seen items allowed"
        said = f"{policy}, the authors' setting (too little data to choose on)"
        if validation is not None:
            scores = {}
            for n, trial in enumerate(grid):
                blocks = method(validation.mask, validation.users, trial)
                both = _ranked_blocks(blocks, validation.train, len(validation.users))
                for option, leave_out in POLICIES.items():
                    scores[(n, option)] = evaluate(both[leave_out], validation.truth)[SELECT_ON]
            at, policy = max(scores, key=lambda key: scores[key])
            setting = grid[at]
            by_policy = {p: max(v for (_, q), v in scores.items() if q == p) for p in POLICIES}
            detail = ", ".join(f"{key} {value:g}" for key, value in setting.items())
            said = f"{detail}; {_chosen(by_policy)[1]}"
        answers = _ranked_blocks(method(everything, users, setting), seen, len(users))
        found[name] = (answers[POLICIES[policy]], said)
    return found


def _chosen(scores: dict[str, float]) -> tuple[str, str]:
    """The policy that scored best on validation, and that said with every score."""
    best = max(scores, key=lambda name: scores[name])
    said = ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
    return best, f"{best}: validation NDCG@10 {said}"


def _implicit(
    binary: sp.csr_matrix, users: npt.NDArray[np.int64], validation: Validation | None
) -> dict[str, tuple[npt.NDArray[np.int64], str]]:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    def fitted(kind: type, matrix: sp.csr_matrix) -> object:
        with threadpool_limits(1, "blas"):
            model = kind(random_state=42)
            model.fit(matrix, show_progress=False)
        return model

    def top(
        model: object, matrix: sp.csr_matrix, rows: npt.NDArray[np.int64], leave_out: bool
    ) -> npt.NDArray[np.int64]:
        ids, _ = model.recommend(  # type: ignore[attr-defined]
            rows, matrix[rows], N=K, filter_already_liked_items=leave_out
        )
        return np.asarray(ids, dtype=np.int64)

    found = {}
    for name, kind in (
        ("implicit ALS", AlternatingLeastSquares),
        ("implicit BPR", BayesianPersonalizedRanking),
    ):
        policy = "seen items left out"  # implicit's default, without a split to choose on
        said = f"{policy} (implicit's default: too little data to choose on)"
        if validation is not None:
            trial = fitted(kind, validation.train)
            scores = {
                option: evaluate(top(trial, validation.train, validation.users, leave_out),
                               validation.truth)[SELECT_ON]
                for option, leave_out in POLICIES.items()
            }  # fmt: skip
            policy, said = _chosen(scores)
        model = fitted(kind, binary)
        found[name] = (top(model, binary, users, POLICIES[policy]), said)
    return found


def _ease_scores(
    binary: sp.csr_matrix, users: npt.NDArray[np.int64], l2: float, leave_out: bool
) -> npt.NDArray[np.float64]:
    gram = (binary.T @ binary).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    rows = binary[users]
    scores = np.asarray(rows @ weights)
    if leave_out:
        scores[rows.toarray() > 0] = -np.inf
    return scores


def _ease(
    log: Interactions, users: npt.NDArray[np.int64], validation: Validation | None
) -> tuple[str, npt.NDArray[np.int64], str] | None:
    """EASE (Steck 2019) with its lambda and repeat policy chosen on validation; None if it
    has too many items, or too little data to choose on."""
    from training.recipes import EASE

    if log.n_items > EASE.MAX_ITEMS or validation is None:
        return None
    scores = {
        (l2, policy): evaluate(
            _rank(_ease_scores(validation.train, validation.users, l2, leave_out)),
            validation.truth,
        )[SELECT_ON]
        for l2 in EASE_L2
        for policy, leave_out in POLICIES.items()
    }
    l2, policy = max(scores, key=lambda setting: scores[setting])
    by_policy = {p: max(v for (_, q), v in scores.items() if q == p) for p in POLICIES}
    binary, _ = _binary(log, np.ones(len(log), dtype=bool))
    best = _rank(_ease_scores(binary, users, l2, POLICIES[policy]))
    return "EASE, tuned", best, f"lambda {l2:g}, {_chosen(by_policy)[1]}"


#: The peer every model's ratio is taken against: each user's own items, then popular.
