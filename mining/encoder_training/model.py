"""The trainable dual encoder (one transformer shared by all languages), its SentencePiece
vocabulary, and export to the sentence-transformers layout that `TransformerEncoder` loads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from mining.encoders.loading import ENCODER_CONFIG

SPECIAL = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 24000
    hidden: int = 256
    layers: int = 2
    heads: int = 4
    ffn: int = 1024
    max_len: int = 64
    pooling: str = "mean"
    dense: bool = True


def train_sentencepiece(texts: Iterable[str], prefix: Path, vocab_size: int):
    """Unigram SentencePiece with byte fallback (no unknown characters), specials fixed."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=0.9995,
        byte_fallback=True,
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece="[PAD]",
        unk_piece="[UNK]",
        bos_piece="[CLS]",
        eos_piece="[SEP]",
        user_defined_symbols=["[MASK]"],
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        minloglevel=2,
        num_threads=2,
    )
    return fast_tokenizer(prefix.with_suffix(".model"))


def fast_tokenizer(spm_model: Path):
    """The SentencePiece model as a transformers fast tokenizer: [CLS] text [SEP]."""
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=SPECIAL["[UNK]"], byte_fallback=True))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence(
        [decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


class DualEncoder(torch.nn.Module):
    """BERT, [CLS] or mean pooling, optional Dense+tanh head, L2 normalisation (LaBSE's shape)."""

    def __init__(self, config: ModelConfig):
        from transformers import BertConfig, BertModel

        super().__init__()
        self.config = config
        self.bert = BertModel(
            BertConfig(
                vocab_size=config.vocab_size,
                hidden_size=config.hidden,
                num_hidden_layers=config.layers,
                num_attention_heads=config.heads,
                intermediate_size=config.ffn,
                max_position_embeddings=config.max_len + 2,
                type_vocab_size=1,
                pad_token_id=0,
            ),
            add_pooling_layer=False,
        )
        self.dense = torch.nn.Linear(config.hidden, config.hidden) if config.dense else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if self.dense is not None:
            pooled = torch.tanh(self.dense(pooled))
        return F.normalize(pooled, dim=-1)


# The languages of the training corpus (encoder_training/prep.py: English paired with German
# and with Chinese); written into the exported encoder's ccmine_encoder.json.
TRAINED_LANGUAGES = ("de", "en", "zh")


def export_labse_layout(model: DualEncoder, tokenizer, folder: Path, card: dict) -> None:
    """Write the model in float16 safetensors in the sentence-transformers LaBSE layout."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.bert.half().save_pretrained(folder, safe_serialization=True)
    model.bert.float()
    tokenizer.save_pretrained(folder)
    config = model.config
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": config.max_len, "do_lower_case": False})
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": config.hidden,
                "pooling_mode_cls_token": config.pooling == "cls",
                "pooling_mode_mean_tokens": config.pooling == "mean",
            }
        )
    )
    if model.dense is not None:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
        )
        (folder / "2_Dense").mkdir(exist_ok=True)
        (folder / "2_Dense" / "config.json").write_text(
            json.dumps(
                {
                    "in_features": config.hidden,
                    "out_features": config.hidden,
                    "bias": True,
                    "activation_function": "torch.nn.modules.activation.Tanh",
                }
            )
        )
        save_file(
            {
                "linear.weight": model.dense.weight.detach().half().contiguous(),
                "linear.bias": model.dense.bias.detach().half().contiguous(),
            },
            str(folder / "2_Dense" / "model.safetensors"),
        )
    modules.append(
        {
            "idx": len(modules),
            "name": str(len(modules)),
            "path": "3_Normalize",
            "type": "sentence_transformers.models.Normalize",
        }
    )
    (folder / "3_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules, indent=1))
    (folder / ENCODER_CONFIG).write_text(
        json.dumps(
            {
                "languages": list(TRAINED_LANGUAGES),
                "text_transform": "opencc_t2s",
                "model_config": asdict(config),
                **card,
            },
            indent=2,
            ensure_ascii=False,
        )
    )
