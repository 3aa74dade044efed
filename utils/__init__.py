"""Data, run folders, callbacks, plots and the training loop shared by every model family."""
