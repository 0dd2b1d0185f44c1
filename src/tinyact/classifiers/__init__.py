"""Stage 4: classifiers on latents (SVM, RF, XGBoost, DT, MLP) and the saved-classifier format."""

from tinyact.classifiers.saved import (
    ClassifierMismatchError,
    SavedClassifier,
    load_classifier,
    save_classifier,
)

__all__ = ["ClassifierMismatchError", "SavedClassifier", "load_classifier", "save_classifier"]
