"""The LaBSE-recipe trainer of the bundled encoder: data preparation, model, loss, training loop."""
