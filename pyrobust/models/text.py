"""The IMDB networks of section 5.1: ``embedding`` (bag of word embeddings) and ``lstm``.

Both take token ids, int64 ``(N, L)``, of the top :data:`VOCAB_SIZE` words; reviews are left-padded to
:data:`SEQUENCE_LENGTH` tokens (Keras ``pad_sequences``, as the authors did).
"""

from __future__ import annotations

import torch
from torch import nn

from pyrobust.models.dropout import Dropout
from pyrobust.models.init import UNIFORM_INIT, he_init, uniform_init

__all__ = ["SEQUENCE_LENGTH", "VOCAB_SIZE", "EmbeddingLSTM", "WordEmbedding"]

#: IMDB vocabulary size and review length (paper, section 5.1: top 5,000 words, 400 tokens).
VOCAB_SIZE = 5000
SEQUENCE_LENGTH = 400


class WordEmbedding(nn.Module):
    """IMDB bag-of-embeddings network: ids ``(N, 400)`` -> ``(N, 400, 50)`` -> dropout 0.8 -> ReLU -> flatten
    ``(N, 20000)`` -> logits ``(N, C)``.

    The embedding table is uniform in [-0.05, 0.05] (it is a lookup, not a layer with a fan-in; Keras's
    default, which the authors used); the dense output layer is uniform as well.

    Raises:
        ValueError: (``forward``) ids not of shape ``N x sequence_length``.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        vocab_size: int = VOCAB_SIZE,
        sequence_length: int = SEQUENCE_LENGTH,
        embedding_dim: int = 50,
        dropout: float = 0.8,
    ):
        super().__init__()
        self.sequence_length = sequence_length
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(sequence_length * embedding_dim, num_classes)
        uniform_init(self.embedding)
        uniform_init(self.out)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.shape[1] != self.sequence_length:
            raise ValueError(
                f"the embedding model takes token ids of shape N x {self.sequence_length}, got {tuple(ids.shape)}"
            )
        h = torch.relu(self.dropout(self.embedding(ids)))
        return self.out(h.flatten(1))


class EmbeddingLSTM(nn.Module):
    """IMDB recurrent network: ids ``(N, L)`` -> embedding 256 -> LSTM 512 (state after the last token)
    -> dense 512 + ReLU -> dropout 0.5 -> logits ``(N, C)``.

    Reviews are left-padded (Keras ``pad_sequences``), so the last state has read the whole review. LSTM
    weights are uniform in [-0.05, 0.05] like every weight not feeding a ReLU, with the forget-gate bias at
    1 (Keras's ``unit_forget_bias``, used by the authors) so that early gradients flow through time.

    Raises:
        ValueError: (``forward``) ids not of shape ``N x L``.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        vocab_size: int = VOCAB_SIZE,
        embedding_dim: int = 256,
        hidden: int = 512,
        dense: int = 512,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.dense = nn.Linear(hidden, dense)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(dense, num_classes)
        uniform_init(self.embedding)
        for name, weight in self.lstm.named_parameters():
            if name.startswith("weight"):
                nn.init.uniform_(weight, -UNIFORM_INIT, UNIFORM_INIT)
            else:
                nn.init.zeros_(weight)
        # PyTorch gate order is (input, forget, cell, output); both bias vectors are summed, so set one.
        nn.init.ones_(self.lstm.bias_ih_l0[hidden : 2 * hidden])
        he_init(self.dense)
        uniform_init(self.out)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"the lstm model takes token ids of shape N x L, got {tuple(ids.shape)}")
        _, (h_last, _) = self.lstm(self.embedding(ids))
        return self.out(self.dropout(torch.relu(self.dense(h_last[-1]))))
