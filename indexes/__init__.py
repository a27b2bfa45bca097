"""FAISS indexes per language: building, metadata, GPU placement and batched kNN search."""
