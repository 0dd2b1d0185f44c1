"""Stage 3: training loops (unsupervised autoencoder, knowledge distillation) and their shared runtime."""
