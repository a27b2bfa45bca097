"""fairseq-train settings: `cpu-tiny` for CI and laptops, `base` and `big` transformers for GPUs.

The device is not part of a preset: `ccmine nmt --device` adds fairseq's `--cpu` where needed.
"""


# fmt: off
def _adam_inverse_sqrt(lr: str, warmup: str) -> list[str]:
    """Adam with the inverse square-root schedule and label smoothing, as in fairseq's examples."""
    return [
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", lr,
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", warmup,
        "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
    ]
# fmt: on


# fmt: off
PRESETS: dict[str, dict] = {
    "cpu-tiny": {
        "vocab_size": 4000,
        "train": [
            "--arch", "transformer", "--encoder-layers", "2", "--decoder-layers", "2",
            "--encoder-embed-dim", "128", "--decoder-embed-dim", "128",
            "--encoder-ffn-embed-dim", "256", "--decoder-ffn-embed-dim", "256",
            "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
            "--share-all-embeddings", "--dropout", "0.1",
            *_adam_inverse_sqrt("1e-3", "200"),
            "--max-tokens", "2048", "--max-update", "3000", "--num-workers", "0",
        ],
        "beam": 4,
    },
    "base": {
        "vocab_size": 16000,
        "train": [
            "--arch", "transformer", "--share-all-embeddings", "--dropout", "0.3",
            *_adam_inverse_sqrt("5e-4", "4000"),
            "--max-tokens", "8192", "--max-update", "50000", "--fp16",
        ],
        "beam": 5,
    },
    "big": {
        "vocab_size": 32000,
        "train": [
            "--arch", "transformer_vaswani_wmt_en_de_big", "--share-all-embeddings",
            "--dropout", "0.3", *_adam_inverse_sqrt("7e-4", "4000"),
            "--max-tokens", "8192", "--update-freq", "4", "--max-update", "100000", "--fp16",
        ],
        "beam": 5,
    },
}
# fmt: on
