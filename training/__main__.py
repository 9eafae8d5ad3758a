"""`python -m training`: the training stage's commands."""

from training.cli import main

main()
