"""``MLPResNetEstimator``: the paper's standalone MLP classifier on latents, as a scikit-learn estimator.

The same :class:`~tinyact.models.MLPResNetClassifier` as inside the KD student, trained from scratch with
cross-entropy only (paper, "Standalone MLP classifier"): Adam, weight decay 1e-4, learning rate decayed from
1e-5 to 1e-6 over a long schedule, and early stopping on a held-out part of the training data (the weights of
the best held-out epoch are kept). Seeded: the same data and ``seed`` give the same model.

It behaves like any scikit-learn classifier (``fit/predict/predict_proba``, ``get_params``, ``clone``), so
``fit_classifier(latents, "mlp")`` and the cloud's saved-classifier format take it unchanged::

    clf = MLPResNetEstimator(lr=1e-3, lr_min=1e-4, max_epochs=200).fit(x_train, y_train)   # x: float [N, D]
    proba = clf.predict_proba(x_test)                                                     # [N, C], rows sum to 1
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from tinyact.models.mlp_resnet import MLPResNetClassifier

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads, restoring the previous number afterwards."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MLPResNetEstimator(ClassifierMixin, BaseEstimator):
    """Residual MLP classifier on latent vectors (scikit-learn API).

    Args:
        dim, depth, hidden, dropout: the :class:`MLPResNetClassifier` shape (defaults: the paper's head).
        lr, lr_min: Adam learning rate at the first and the last epoch (cosine decay in between).
        weight_decay: Adam weight decay (L2, as ``torch.optim.Adam`` applies it).
        batch_size: clips per step.
        max_epochs: the longest schedule; ``patience`` epochs without a better held-out score stop it early.
        validation_fraction: part of the training data held out for early stopping (stratified when possible;
            0 disables early stopping and trains all ``max_epochs``).
        standardize: scale features to zero mean and unit variance with the training statistics first.
        seed: seeds the split, the initialisation and the batch order.
        device: ``cpu`` or ``cuda``.
        threads: torch CPU threads while fitting/predicting (``None``: leave torch's setting). One by default:
            these matrices are small, and on a busy machine extra threads spin instead of helping.

    Attributes after ``fit``: ``classes_``, ``n_features_in_``, ``n_epochs_`` (epochs run), ``best_epoch_``,
    ``best_score_`` (held-out accuracy), ``history_`` (per-epoch train loss, held-out loss and accuracy).
    """

    def __init__(
        self,
        dim: int = 512,
        depth: int = 4,
        hidden: int | None = None,
        dropout: float = 0.1,
        lr: float = 1e-5,
        lr_min: float = 1e-6,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        max_epochs: int = 500,
        patience: int = 50,
        validation_fraction: float = 0.15,
        standardize: bool = True,
        seed: int = 0,
        device: str = "cpu",
        threads: int | None = 1,
    ) -> None:
        self.dim = dim
        self.depth = depth
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.lr_min = lr_min
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.seed = seed
        self.device = device
        self.threads = threads

    # ------------------------------------------------------------------------------------------ fitting
    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPResNetEstimator:
        """Train on ``X`` float ``[N, D]`` and labels ``y`` ``[N]`` (any hashable labels)."""
        with _torch_threads(self.threads):
            return self._fit(X, y)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> MLPResNetEstimator:
        x = np.asarray(X, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected a 2-D array of latents [N, D], got shape {x.shape}")
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        self.n_features_in_ = x.shape[1]
        self.mean_ = x.mean(0) if self.standardize else np.zeros(x.shape[1], np.float32)
        self.scale_ = x.std(0) + 1e-6 if self.standardize else np.ones(x.shape[1], np.float32)
        x = (x - self.mean_) / self.scale_

        x_fit, y_fit, x_hold, y_hold = x, y_idx, None, None
        if self.validation_fraction > 0 and len(x) >= 4:
            counts = np.bincount(y_idx)
            stratify = y_idx if counts.min() >= 2 and len(x) * self.validation_fraction >= len(counts) else None
            x_fit, x_hold, y_fit, y_hold = train_test_split(
                x, y_idx, test_size=self.validation_fraction, random_state=self.seed, stratify=stratify
            )

        torch.manual_seed(self.seed)
        device = torch.device(self.device)
        model = MLPResNetClassifier(x.shape[1], len(self.classes_), self.dim, self.depth, self.hidden, self.dropout).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        xt, yt = torch.from_numpy(x_fit).to(device), torch.from_numpy(y_fit.astype(np.int64)).to(device)
        hold = None
        if x_hold is not None and y_hold is not None:
            hold = (torch.from_numpy(x_hold).to(device), torch.from_numpy(y_hold.astype(np.int64)).to(device))

        best_key: tuple[float, float] | None = None
        best_state, stale = None, 0
        self.history_: list[dict[str, float]] = []
        self.best_epoch_, self.best_score_ = -1, float("nan")
        for epoch in range(self.max_epochs):
            for group in optimizer.param_groups:
                group["lr"] = self._lr_at(epoch)
            model.train()
            order = torch.randperm(len(xt), generator=generator).to(device)
            loss_sum = 0.0
            for start in range(0, len(xt), self.batch_size):
                idx = order[start : start + self.batch_size]
                loss = F.cross_entropy(model(xt[idx]), yt[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(idx)
            record = {"epoch": epoch, "train_loss": loss_sum / len(xt)}
            if hold is not None:
                model.eval()
                with torch.no_grad():
                    logits = model(hold[0])
                    hold_loss = float(F.cross_entropy(logits, hold[1]))
                    hold_acc = float((logits.argmax(1) == hold[1]).float().mean())
                record.update(holdout_loss=hold_loss, holdout_top1=hold_acc)
                key = (hold_acc, -hold_loss)  # accuracy first, loss breaks ties
                if best_key is None or key > best_key:
                    best_key, best_state, stale = key, copy.deepcopy(model.state_dict()), 0
                    self.best_epoch_, self.best_score_ = epoch, hold_acc
                else:
                    stale += 1
            self.history_.append(record)
            if hold is not None and stale >= self.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        self.n_epochs_ = len(self.history_)
        model.eval()
        self.model_ = model.cpu()
        logger.debug("mlp: %d epochs, best held-out top-1 %.3f at epoch %d", self.n_epochs_, self.best_score_, self.best_epoch_)
        return self

    def _lr_at(self, epoch: int) -> float:
        if self.max_epochs <= 1:
            return self.lr
        progress = epoch / (self.max_epochs - 1)
        return self.lr_min + (self.lr - self.lr_min) * 0.5 * (1 + math.cos(math.pi * progress))

    # ------------------------------------------------------------------------------------------ inference
    def _logits(self, X: np.ndarray) -> torch.Tensor:
        check_is_fitted(self, "model_")
        x = np.asarray(X, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(f"expected latents [N, {self.n_features_in_}], got shape {x.shape}")
        x = (x - self.mean_) / self.scale_
        with torch.no_grad(), _torch_threads(getattr(self, "threads", None)):
            return self.model_(torch.from_numpy(x))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, C]`` (columns in ``classes_`` order)."""
        return torch.softmax(self._logits(X), dim=1).numpy()

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits ``[N, C]``."""
        return self._logits(X).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self._logits(X).argmax(1).numpy()]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
