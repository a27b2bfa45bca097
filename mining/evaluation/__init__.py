"""Evaluation of encoders: Tatoeba similarity search and BUCC-style bitext mining F1."""
