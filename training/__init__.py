"""Training: recipes, evaluation and batch recommendations over the curated zone (issue 4)."""
