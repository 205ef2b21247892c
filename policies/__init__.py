"""Training, evaluation and assist policies (stable-baselines3 + torch). Empty until the training issue."""
